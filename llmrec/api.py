"""The Python API: one verb per stage, the same functions the command line calls.

Each verb takes paths and a typed options object (or its fields as keyword arguments), writes
its output file whole or not at all, and returns what it did::

    import llmrec

    llmrec.split("interactions.csv", "history.csv", "heldout.csv")
    llmrec.embed("items.csv", "items.parquet", template="{title}. {description}")
    llmrec.profile("history.csv", "items.parquet", "users.parquet")
    llmrec.rank("items.parquet", "rankings.csv", users="users.parquet", history="history.csv", k=10)
    report = llmrec.evaluate(["rankings.csv"], "heldout.csv", ks=[5, 10])
    llmrec.tune("history.csv", "items.parquet", "tuned.json", trials=50)
    llmrec.train("history.csv", "items.parquet", "model", epochs=20)
    llmrec.rank("items.parquet", "rankings.csv", history="history.csv", model="model")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .data.splits import SplitResult, split_file
from .embedding.job import EmbedResult, embed_file
from .engine.ray import RayOptions
from .evaluation.scoring import Report, evaluate_report
from .options import (
    EmbedOptions,
    HistoryColumns,
    RankOptions,
    SplitOptions,
    TrainOptions,
    TuneOptions,
    Weighting,
)
from .profiles import ProfileRun, profile_to_file
from .ranking.run import RankResult, rank_to_file
from .tuning.run import TuneResult, tune_to_file

if TYPE_CHECKING:
    from .sequential.training import TrainResult


def embed(
    items: str,
    output: str = "items.parquet",
    options: EmbedOptions | None = None,
    *,
    ray: RayOptions | None = None,
    **fields: object,
) -> EmbedResult:
    """Embed item texts into a vector table (`llmrec embed`); `fields` are `EmbedOptions`'."""
    return embed_file(items, output, options or EmbedOptions(**fields), ray=ray)


def profile(
    history: str,
    items: str,
    output: str = "users.parquet",
    *,
    columns: HistoryColumns | None = None,
    weighting: Weighting | None = None,
    model: str | None = None,
) -> ProfileRun:
    """Turn each user's history into a user vector (`llmrec profile`); with `model` (a folder
    from `train`), the model's user vectors."""
    return profile_to_file(
        history, items, output, columns=columns, weighting=weighting, model=model
    )


def rank(
    items: str | None,
    output: str = "rankings.csv",
    options: RankOptions | None = None,
    *,
    users: str | None = None,
    history: str | None = None,
    columns: HistoryColumns | None = None,
    weighting: Weighting | None = None,
    ray: RayOptions | None = None,
    **fields: object,
) -> RankResult:
    """Write each user's top k as CSV (`llmrec rank`): users from a vector table (`users`) or
    profiled from `history`, whose items are also left out of their lists; `fields` are
    `RankOptions`' (k, blend, baseline, explain, fast, …)."""
    return rank_to_file(
        items,
        output,
        options or RankOptions(**fields),
        users_path=users,
        history_path=history,
        columns=columns,
        weighting=weighting,
        ray=ray,
    )


def evaluate(
    rankings: str | Sequence[str],
    truth: str | None = None,
    ks: Sequence[int] = (5, 10, 20),
    *,
    impressions: str | None = None,
    items: str | None = None,
    train: str | None = None,
    ci: bool = False,
    resamples: int = 1000,
    seed: int = 0,
) -> Report:
    """Score rankings against held-out truth, or against an impression log's clicks and
    conversions (`impressions`: AUC, MRR, nDCG as MIND, CTR@k, conversion@k) (`llmrec
    evaluate`); several runs are compared with the first by paired tests."""
    paths = [rankings] if isinstance(rankings, str) else list(rankings)
    return evaluate_report(
        paths,
        truth,
        list(ks),
        impressions_path=impressions,
        items_path=items,
        train_path=train,
        ci=ci,
        resamples=resamples,
        seed=seed,
    )


def split(
    interactions: str,
    history_out: str,
    heldout_out: str,
    options: SplitOptions | None = None,
    **fields: object,
) -> SplitResult:
    """Hold out interactions to evaluate against (`llmrec split`); `fields` are `SplitOptions`'."""
    return split_file(interactions, history_out, heldout_out, options or SplitOptions(**fields))


def tune(
    history: str,
    items: str,
    output: str = "tuned.json",
    options: TuneOptions | None = None,
    *,
    columns: HistoryColumns | None = None,
    model: str | None = None,
    on_trial: Callable[[int, float], None] | None = None,
    **fields: object,
) -> TuneResult:
    """Search the ranking recipe on an inner leave-last split of `history` and write it as a
    config for `rank --config` (`llmrec tune`); `fields` are `TuneOptions`' (metric, trials,
    time_budget, seed). With `model` (a folder from `train`), its weight is searched too."""
    return tune_to_file(
        history,
        items,
        output,
        options or TuneOptions(**fields),
        columns=columns,
        model=model,
        on_trial=on_trial,
    )


def train(
    history: str,
    items: str,
    output: str = "model",
    options: TrainOptions | None = None,
    *,
    columns: HistoryColumns | None = None,
    **fields: object,
) -> TrainResult:
    """Fit the sequential model on `history` over the item table `items` and write the model
    folder (`llmrec train`); `fields` are `TrainOptions`'. A killed run resumes."""
    from .sequential.training import train_to_folder

    return train_to_folder(
        history, items, output, options or TrainOptions(**fields), columns=columns
    )
