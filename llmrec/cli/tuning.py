"""`llmrec tune`, and what `rank --config` takes from its output."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated

import typer

from ..options import HistoryColumns, TuneOptions, Weighting
from .common import (
    Debug,
    ItemCol,
    Quiet,
    TimeCol,
    UserCol,
    check_outputs,
    command,
    left_default,
    log,
    progress_of,
    say,
)

WEIGHTING_OPTIONS = ("strategy", "half_life", "max_history")


@command
def tune(
    history: Annotated[
        str,
        typer.Argument(
            metavar="HISTORY", help="Interactions to tune on (user and item id per row, + time)."
        ),
    ],
    items: Annotated[str, typer.Option(help="Item vector table from 'llmrec embed'.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Config to write (JSON) for 'rank --config'.")
    ] = "tuned.json",
    metric: Annotated[
        str,
        typer.Option(
            help="What to maximise: ndcg@K, recall@K, hit_rate@K or mrr@K (K: the list length)."
        ),
    ] = "ndcg@10",
    trials: Annotated[
        int | None,
        typer.Option(
            help="Recipes to try, the fixed one first [default: 50 without --time-budget]."
        ),
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            help="Stop trying new recipes after this long (15m, 2h, 90s); with --trials, "
            "whichever comes first."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the sampler: the same seed, the same search.")
    ] = 0,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model folder from 'llmrec train': also search the weight of its scores (seq), "
            "scored on the inner split with the weights it had before seeing those events."
        ),
    ] = None,
    user_col: UserCol = "user_id",
    item_col: ItemCol = "item_id",
    time_col: TimeCol = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Search the ranking recipe (weighting, blend, EASE λ, interests) on an inner split of a
    history: each user's latest event is held out and predicted from the rest."""
    from ..api import tune as tune_recipe

    check_outputs([output], [history, items, model])
    options = TuneOptions(metric=metric, trials=trials, time_budget=time_budget, seed=seed)
    columns = HistoryColumns(user_col, item_col, time_col)
    started = time.perf_counter()
    with progress_of(quiet, "tuning") as shown:
        result = tune_recipe(
            history, items, output, options, columns=columns, model=model, progress=shown
        )
    config = result.config
    low, high = config["interval"]
    say(
        quiet,
        f"llmrec tune: {len(config['trials'])} trials in {time.perf_counter() - started:.1f} s; "
        f"{metric} {config['value']:.4f} [{low:.4f}, {high:.4f}] on the inner split of "
        f"{result.inner_users:,} users (fixed recipe {config['fixed_recipe']['value']:.4f}); "
        f"wrote {'stdout' if output == '-' else output}",
    )


def tuned_options(
    ctx: typer.Context,
    config_path: str,
    history_path: str | None,
    weighting: Weighting,
    quiet: bool,
) -> tuple[dict[str, object], Weighting]:
    """What a config from `llmrec tune` sets that the command line did not: the rank options
    (blend, ease_lambda, interests) by parameter name, and the weighting with its options
    applied. Warns when the history changed since it was tuned."""
    from ..tuning.config import read_config

    config = read_config(config_path)
    if history_path and not quiet and config.history_changed(history_path):
        log(
            "warning",
            f"llmrec rank: warning: {history_path} changed since {config_path} was tuned "
            "(fingerprint differs); rerun llmrec tune",
        )
    unset = {name: value for name, value in config.options.items() if left_default(ctx, name)}
    if "half_life" in unset and unset["half_life"] is not None:
        unset["half_life"] = str(unset["half_life"])
    if "ease_lambda" in unset:
        unset["ease_lambda"] = float(unset["ease_lambda"])
    tuned = {name: unset.pop(name) for name in WEIGHTING_OPTIONS if name in unset}
    return unset, dataclasses.replace(weighting, **tuned)
