"""The Python API: one verb per stage, the same stage functions the command line calls.

Each verb takes its inputs as paths or in memory (pandas DataFrames, pyarrow Tables, the vector
tables that `embed` and `profile` return), and a typed options object (or its fields as
keyword arguments). Given an output path it writes the file whole or not at all, as the command
does, and returns what the run did; without one it writes nothing and returns the result in
memory::

    import llmrec

    history, heldout = llmrec.split("interactions.csv")               # two DataFrames
    items = llmrec.embed("items.csv", template="{title}. {description}")  # .ids, .matrix, .meta
    llmrec.embed("items.csv", "items.parquet")                          # the file, for the rest
    rankings = llmrec.rank("items.parquet", history="history.csv", k=10)  # a DataFrame
    report = llmrec.evaluate(rankings, heldout, ks=[5, 10])            # .to_frame(), .to_dict()

An input held in memory is written to a temporary Parquet file for the run, so both ways are
read and checked by the same code; an error names the argument ("the history DataFrame").
`evaluate` takes rankings and truth as DataFrames or files; `tune` writes the config only when
given a path; `train` writes a model folder, which `rank(model=...)` reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, overload

import pandas as pd

from .data.splits import SplitResult, split_file, split_table
from .embedding.job import EmbedResult, embed_file, embed_table
from .engine.ray import RayOptions
from .errors import InputError
from .evaluation.lists import read_rankings, read_truth
from .evaluation.results import Report
from .evaluation.scoring import build_report, evaluate_report, evaluate_runs
from .io.in_memory import Source, as_files
from .io.vectors import VectorTable
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

__all__ = ["Progress", "embed", "evaluate", "profile", "rank", "split", "train", "tune"]

Table = pd.DataFrame


class Progress(Protocol):
    """What a long verb reports as it goes (the command line draws it as a progress bar):
    `start` with the amount of work (items, users, epochs, trials; None if unknown), then
    `advance` by what is done, with a note when there is news (an epoch's loss, the best trial).
    """

    def start(self, total: int | None) -> None: ...

    def advance(self, done: int = 1, note: str | None = None) -> None: ...


@overload
def split(
    interactions: Source, history_out: None = None, heldout_out: None = None, **fields: object
) -> SplitResult: ...
@overload
def split(
    interactions: Source, history_out: str, heldout_out: str, **fields: object
) -> SplitResult: ...
def split(
    interactions: Source,
    history_out: str | None = None,
    heldout_out: str | None = None,
    options: SplitOptions | None = None,
    **fields: object,
) -> SplitResult:
    """Hold out interactions to evaluate against (`llmrec split`); `fields` are
    `SplitOptions`'. Returns (history, heldout) DataFrames; writes them only when given both
    paths."""
    options = options or SplitOptions(**fields)
    if (history_out is None) != (heldout_out is None):
        raise InputError("give both history_out and heldout_out, or neither (kept in memory)")
    with as_files(interactions=interactions) as paths:
        if history_out is None:
            return split_table(paths["interactions"], options)
        return split_file(paths["interactions"], history_out, heldout_out, options)


@overload
def embed(items: Source, output: None = None, **fields: object) -> VectorTable: ...
@overload
def embed(items: Source, output: str, **fields: object) -> EmbedResult: ...
def embed(
    items: Source,
    output: str | None = None,
    options: EmbedOptions | None = None,
    *,
    ray: RayOptions | None = None,
    progress: Progress | None = None,
    **fields: object,
) -> VectorTable | EmbedResult:
    """Embed item texts through the language model (`llmrec embed`); `fields` are
    `EmbedOptions`' (model, template, batch_size, dtype, …).

    Without `output`, returns the item vector table (`.ids`, `.matrix`, `.meta`), the same
    vectors bit for bit as the file. With `output`, streams them to Parquet (incremental and
    resumable; with `ray`, a folder of shards) and returns what the run did."""
    options = options or EmbedOptions(**fields)
    if output is None and ray is not None:
        raise InputError("embedding on Ray writes shards: give an output folder")
    with as_files(items=items) as paths:
        if output is None:
            return embed_table(paths["items"], options)[0].with_shape_meta()
        return embed_file(
            paths["items"],
            output,
            options,
            ray=ray,
            on_start=progress.start if progress else None,
            on_batch=progress.advance if progress else None,
        )


@overload
def profile(
    history: Source, items: Source, output: None = None, **kwargs: object
) -> VectorTable: ...
@overload
def profile(history: Source, items: Source, output: str, **kwargs: object) -> ProfileRun: ...
def profile(
    history: Source,
    items: Source,
    output: str | None = None,
    *,
    columns: HistoryColumns | None = None,
    weighting: Weighting | None = None,
    model: str | None = None,
    progress: Progress | None = None,
) -> VectorTable | ProfileRun:
    """Turn each user's history into a user vector (`llmrec profile`); with `model` (a folder
    from `train`), the model's user vectors. Without `output`, returns the user vector table;
    with it, writes the table and returns what the run did."""
    if progress:
        progress.start(3)  # items read, history read, profiles written
    with as_files(history=history, items=items) as paths:
        run = profile_to_file(
            paths["history"],
            paths["items"],
            output,
            columns=columns,
            weighting=weighting,
            model=model,
            on_step=progress.advance if progress else None,
        )
    return run.users.with_shape_meta() if output is None else run


@overload
def rank(items: Source | None, output: None = None, **kwargs: object) -> pd.DataFrame: ...
@overload
def rank(items: Source | None, output: str, **kwargs: object) -> RankResult: ...
def rank(
    items: Source | None,
    output: str | None = None,
    options: RankOptions | None = None,
    *,
    users: Source | None = None,
    history: Source | None = None,
    columns: HistoryColumns | None = None,
    weighting: Weighting | None = None,
    ray: RayOptions | None = None,
    progress: Progress | None = None,
    **fields: object,
) -> pd.DataFrame | RankResult:
    """Each user's top k (`llmrec rank`): users from a vector table (`users`) or profiled from
    `history`, whose items are also left out of their lists; `fields` are `RankOptions`' (k,
    blend, baseline, explain, fast, …). Told no recipe, it profiles a history by the
    recommended one. Without `output`, returns the rankings as a DataFrame (user_id, rank,
    item_id, score[, because]); with it, writes the CSV in blocks and returns what it did."""
    with as_files(items=items, users=users, history=history) as paths:
        result = rank_to_file(
            paths["items"],
            output,
            options or RankOptions(**fields),
            users_path=paths["users"],
            history_path=paths["history"],
            columns=columns,
            weighting=weighting,
            ray=ray,
            on_start=progress.start if progress else None,
            on_block=progress.advance if progress else None,
        )
    return result.frame if output is None else result


def evaluate(
    rankings: str | Table | Sequence[str | Table],
    truth: str | Table | None = None,
    ks: Sequence[int] = (5, 10, 20),
    *,
    impressions: str | None = None,
    items: str | None = None,
    train: str | None = None,
    ci: bool = False,
    resamples: int = 1000,
    seed: int = 0,
) -> Report:
    """Score rankings (files or DataFrames) against held-out truth, or against an impression
    log's clicks and conversions (`impressions`: AUC, MRR, nDCG as MIND, CTR@k,
    conversion@k) (`llmrec evaluate`); several runs are compared with the first by paired
    tests. The report has `.to_frame()`, `.to_dict()` and an HTML view for notebooks."""
    runs = [rankings] if isinstance(rankings, (str, pd.DataFrame)) else list(rankings)
    paths = [run for run in runs if isinstance(run, str)]
    if len(paths) == len(runs) and (truth is None or isinstance(truth, str)):
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
    if truth is None or impressions or items or train:
        raise InputError(
            "DataFrames are scored against a truth DataFrame or file; give impressions, items "
            "and train with rankings files"
        )
    tables = [read_rankings(run) if isinstance(run, str) else run for run in runs]
    names = [run if isinstance(run, str) else f"run{i + 1}" for i, run in enumerate(runs)]
    held_out = read_truth(truth) if isinstance(truth, str) else truth
    evaluated = evaluate_runs(held_out, tables, list(ks), names=names)
    return build_report(evaluated, ci=ci, resamples=resamples, seed=seed)


def tune(
    history: Source,
    items: Source,
    output: str | None = None,
    options: TuneOptions | None = None,
    *,
    columns: HistoryColumns | None = None,
    model: str | None = None,
    on_trial: Callable[[int, float], None] | None = None,
    progress: Progress | None = None,
    **fields: object,
) -> TuneResult:
    """Search the ranking recipe on an inner leave-last split of `history` (`llmrec tune`);
    `fields` are `TuneOptions`' (metric, trials, time_budget, seed). With `model` (a folder
    from `train`), its weight is searched too. Writes the config for `rank --config` only
    when given `output`; the result holds it either way."""
    options = options or TuneOptions(**fields)
    if progress:
        progress.start(options.n_trials)

    def trial_done(done: int, best: float) -> None:
        if progress:
            progress.advance(1, f"tuning: best {options.metric} {best:.4f}")
        if on_trial:
            on_trial(done, best)

    with as_files(history=history, items=items) as paths:
        return tune_to_file(
            paths["history"],
            paths["items"],
            output,
            options,
            columns=columns,
            model=model,
            on_trial=trial_done,
        )


def train(
    history: Source,
    items: Source,
    output: str,
    options: TrainOptions | None = None,
    *,
    columns: HistoryColumns | None = None,
    progress: Progress | None = None,
    **fields: object,
) -> TrainResult:
    """Fit the sequential model on `history` over the item table `items` and write the model
    folder `output` (`llmrec train`), which `rank(model=...)` and `profile(model=...)` read;
    `fields` are `TrainOptions`'. A killed run resumes."""
    from .sequential.training import train_to_folder

    with as_files(history=history, items=items) as paths:
        return train_to_folder(
            paths["history"],
            paths["items"],
            output,
            options or TrainOptions(**fields),
            columns=columns,
            on_start=progress.start if progress else None,
            on_epoch=epoch_notes(progress) if progress else None,
        )


def epoch_notes(progress: Progress) -> Callable:
    """train's per-epoch report as a progress step: the epoch, its loss and inner NDCG@10."""

    def on_epoch(epoch, so_far) -> None:
        ndcg = "final epoch" if epoch.ndcg is None else f"NDCG@10 {epoch.ndcg:.4f}"
        note = f"epoch {epoch.number} loss {epoch.loss:.3f} {ndcg} (best {so_far.best:.4f})"
        progress.advance(1, note)

    return on_epoch
