"""`llmrec split`."""

from __future__ import annotations

from typing import Annotated

import typer

from ..options import SPLIT_STRATEGIES, SplitOptions
from .common import Debug, ItemCol, Quiet, TimeCol, UserCol, check_outputs, command, say


@command
def split(
    interactions: Annotated[
        str,
        typer.Argument(
            metavar="INTERACTIONS", help="Interactions: user and item id per row (+ time)."
        ),
    ],
    history_out: Annotated[str, typer.Option(help="Where to write the history part.")],
    heldout_out: Annotated[str, typer.Option(help="Where to write the held-out part.")],
    strategy: Annotated[str, typer.Option(help=f"{' | '.join(SPLIT_STRATEGIES)}.")] = "leave-last",
    n: Annotated[int, typer.Option(help="leave-last: interactions held out per user.")] = 1,
    cutoff: Annotated[
        str | None, typer.Option(help="temporal: hold out from this date/time on.")
    ] = None,
    fraction: Annotated[
        float | None, typer.Option(help="temporal: hold out the latest fraction of rows.")
    ] = None,
    min_history: Annotated[
        int, typer.Option(help="Hold out only users keeping at least N history rows.")
    ] = 1,
    user_col: UserCol = "user_id",
    item_col: ItemCol = "item_id",
    time_col: TimeCol = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Split interactions into history and held-out files, deterministically."""
    from ..api import split as split_interactions

    options = SplitOptions(
        strategy=strategy,
        n=n,
        cutoff=cutoff,
        fraction=fraction,
        min_history=min_history,
        user_col=user_col,
        item_col=item_col,
        time_col=time_col,
    )
    check_outputs([history_out, heldout_out], [interactions])
    result = split_interactions(interactions, history_out, heldout_out, options)
    history, heldout = result.history, result.heldout
    say(
        quiet,
        f"llmrec split: {len(history):,} history rows → {history_out}, "
        f"{len(heldout):,} held-out rows of {heldout[user_col].nunique():,} users → "
        f"{heldout_out}",
    )
