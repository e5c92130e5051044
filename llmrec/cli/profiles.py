"""`llmrec profile`."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from .common import (
    Debug,
    HalfLife,
    HistoryTextCol,
    ItemCol,
    LastN,
    MaxHistory,
    Quiet,
    Strategy,
    TimeCol,
    UserCol,
    WeightCol,
    WeightMode,
    check_outputs,
    command,
    history_note,
    progress,
    say,
)


@command
def profile(
    history: Annotated[
        str,
        typer.Argument(metavar="HISTORY", help="Interactions: user and item id per row (+ time)."),
    ],
    items: Annotated[str, typer.Option(help="Item vector table from 'llmrec embed'.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="User vector table to write (Parquet).")
    ] = "users.parquet",
    user_col: UserCol = "user_id",
    item_col: ItemCol = "item_id",
    time_col: TimeCol = None,
    strategy: Strategy = "mean",
    half_life: HalfLife = None,
    last_n: LastN = None,
    max_history: MaxHistory = None,
    weight_col: WeightCol = None,
    weight_mode: WeightMode = "auto",
    history_text_col: HistoryTextCol = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Turn each user's history into a user vector."""
    from ..io.vectors import read_vectors, write_vectors
    from ..profiles import Weighting, profile_history

    check_outputs([output], [history, items])
    started = time.perf_counter()
    weighting = Weighting(strategy, half_life, last_n, max_history, weight_col, weight_mode)
    with progress(quiet) as bar:
        task = bar.add_task("profiling", total=3)
        item_table = read_vectors(items, "items")
        bar.advance(task)
        users, mapped = profile_history(
            history,
            item_table,
            text_col=history_text_col,
            user_col=user_col,
            item_col=item_col,
            time_col=time_col,
            weighting=weighting,
        )
        bar.advance(task)
        write_vectors(users, output)
        bar.advance(task)
    say(
        quiet,
        f"llmrec profile: {len(users):,} users → {output}, "
        f"{time.perf_counter() - started:.1f} s; "
        + (
            f"{mapped.item_index.max() + 1:,} distinct history texts embedded"
            if history_text_col
            else history_note(mapped)
        ),
    )
