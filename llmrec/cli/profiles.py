"""`llmrec profile`."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..options import HistoryColumns, Weighting
from .common import (
    Debug,
    Quiet,
    check_outputs,
    command,
    history_note,
    history_options,
    progress_of,
    say,
)


@command
@history_options
def profile(
    history: Annotated[
        str,
        typer.Argument(metavar="HISTORY", help="Interactions: user and item id per row (+ time)."),
    ],
    items: Annotated[str, typer.Option(help="Item vector table from 'llmrec embed'.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="User vector table to write (Parquet).")
    ] = "users.parquet",
    model: Annotated[
        str | None,
        typer.Option(
            help="Model folder from 'llmrec train': write its user vectors (for rank --model) "
            "instead of weighted means of item vectors."
        ),
    ] = None,
    columns: HistoryColumns | None = None,
    weighting: Weighting | None = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Turn each user's history into a user vector."""
    from ..api import profile as profile_users

    check_outputs([output], [history, items])
    started = time.perf_counter()
    with progress_of(quiet, "profiling") as shown:
        run = profile_users(
            history,
            items,
            output,
            columns=columns,
            weighting=weighting,
            model=model,
            progress=shown,
        )
    mapped = run.history
    say(
        quiet,
        f"llmrec profile: {len(run.users):,} users → {output}, "
        f"{time.perf_counter() - started:.1f} s; "
        + (
            f"{mapped.item_index.max() + 1:,} distinct history texts embedded"
            if run.from_text
            else history_note(mapped)
        ),
    )
