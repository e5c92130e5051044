"""`llmrec tune`: search the ranking recipe on an inner leave-last split of a history and write
the chosen options, with what they and the fixed recipe scored, as a JSON config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..evaluation.stats import bootstrap_ci
from ..io.atomic import STDIO
from ..io.fingerprint import file_sha256
from ..io.vectors import VectorTable, read_vectors
from ..options import HistoryColumns, TuneOptions
from ..ranking.sequence import SeqVectors
from ..version import __version__
from .config import write_config
from .inner import InnerSplit, inner_split, read_history
from .scoring import InnerRanker
from .search import Search, search
from .space import FIXED_RECIPE, Space

SAMPLER = "optuna TPE"


@dataclass
class TuneResult:
    """What `tune_to_file` found and wrote: the config document and the search behind it."""

    config: dict
    search: Search
    inner_users: int


def tune_to_file(
    history_path: str,
    items_path: str,
    output: str | None,
    options: TuneOptions | None = None,
    *,
    columns: HistoryColumns | None = None,
    model: str | None = None,
    on_trial: Callable[[int, float], None] | None = None,
) -> TuneResult:
    """Search the recipe on the inner split of `history_path` (never on held-out data) and
    write the config (unless `output` is None: `TuneResult.config` holds it either way);
    `on_trial(trials done, best value)` reports progress. With `model` (a
    folder from `train`), the weight of its scores is searched too."""
    options = options or TuneOptions()
    if history_path == STDIO:
        raise InputError(
            "HISTORY -: tune reads the history from a file, not stdin (its sha256 goes in the config)"
        )
    items = read_vectors(items_path, "items").sorted_by_id()
    read = read_history(history_path, items.ids, columns or HistoryColumns())
    stamp = file_sha256(history_path)  # of the bytes just read, not of a later edit
    split = inner_split(read.history)
    name, k = options.name_and_k
    seq = inner_seq_vectors(model, split, items, items_path) if model else None
    ranker = InnerRanker(split, items, name, k, seq)
    space = Space.of(split.history, read.timed, seq=seq is not None)
    found = search(ranker, space, options, on_trial)
    history = {
        "path": history_path,
        "fingerprint": stamp,
        "rows": read.rows,
        "users": int(read.history.n_users),
        "inner_users": len(split.user_ids),
    }
    config = document(found, options, history)
    if model and "seq=" in config["options"]["blend"]:
        config["options"]["model"] = model
    if output is not None:
        write_config(output, config)
    return TuneResult(config, found, len(split.user_ids))


def document(found: Search, options: TuneOptions, history: dict) -> dict:
    """The config: chosen options and value, the fixed recipe's, the history and the trials."""
    best = found.trials[found.best]
    name, k = options.name_and_k
    return {
        "llmrec_version": __version__,
        "metric": options.metric,
        "k": k,
        "options": best.recipe.options(),
        "value": best.value,
        "interval": interval(found.best_values, options.seed),
        "fixed_recipe": {
            "options": FIXED_RECIPE.options(),
            "value": found.trials[0].value,
            "interval": interval(found.fixed_values, options.seed),
        },
        "history": history,
        "search": {
            "sampler": SAMPLER,
            "seed": options.seed,
            "trials": len(found.trials),
            "seconds": found.seconds,
        },
        "trials": [
            {
                "number": trial.number,
                "params": trial.recipe.options() if trial.recipe else None,
                "value": trial.value,
                "seconds": trial.seconds,
            }
            for trial in found.trials
        ],
    }


def inner_seq_vectors(
    model_path: str, split: InnerSplit, items: VectorTable, items_path: str
) -> SeqVectors:
    """The model's vectors of the scored users from the inner history, by the weights it had
    before its final epoch saw their held-out events."""
    from ..sequential.folder import load_model
    from ..sequential.representations import item_representations, user_representations

    model = load_model(model_path, inner=True)
    model.check_items(items, items_path)
    rows = pd.Index(split.history.user_ids).get_indexer(split.user_ids)
    return SeqVectors(
        user_representations(model, split.history, items, rows),
        item_representations(model, items),
    )


def interval(values: np.ndarray, seed: int) -> list[float]:
    """The 95% percentile-bootstrap interval of the mean of per-user `values`."""
    low, high = bootstrap_ci(values[:, None], seed=seed)
    return [float(low[0]), float(high[0])]
