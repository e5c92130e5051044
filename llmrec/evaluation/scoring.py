"""Rankings × held-out truth → per-user metrics, their means, and the accounting of users.

Users in the truth but absent from a run score 0 on every metric and are counted; users
ranked but absent from the truth are ignored and counted. Every run is scored on the same
users: those of the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import InputError
from ..options import flag
from . import beyond_accuracy, stats
from .impressions import MIND_KS, evaluate_impressions, read_impressions
from .lists import as_arrow, encode, hits_of, read_rankings, read_truth, run_lists
from .metrics import FUNCTIONS, METRICS
from .results import Comparison, Evaluation, Report


def parse_ks(text: str) -> list[int]:
    """`5,10,20` → [5, 10, 20], sorted and unique; every k must be a positive integer."""
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise InputError(
            f"{flag('k')} {text!r}: give cut-offs as integers, e.g. {flag('k')} 5,10,20"
        ) from exc
    if not ks or ks[0] < 1:
        raise InputError(f"{flag('k')} {text!r}: every cut-off must be at least 1")
    return ks


def evaluate_runs(
    truth: pa.Table | pd.DataFrame,
    runs: list[pa.Table | pd.DataFrame],
    ks: list[int],
    *,
    names: list[str] | None = None,
    context: beyond_accuracy.Context | None = None,
) -> list[Evaluation]:
    """Score every run against the same truth at every k in `ks`."""
    encoded = encode(as_arrow(truth), [as_arrow(r) for r in runs])
    names = names or [f"run{i + 1}" for i in range(len(runs))]
    depth = max(ks)
    user_ids = encoded.user_names.take(pa.array(encoded.truth_users)).to_numpy(zero_copy_only=False)
    index = pd.Index(user_ids, name="user_id", dtype=object)
    in_truth = np.zeros(len(encoded.user_names), dtype=bool)
    in_truth[encoded.truth_users] = True
    results = []
    for name, (users, items, table) in zip(names, encoded.runs, strict=True):
        lists, ranked, longest = run_lists(users, items, table, encoded, depth)
        hits = hits_of(lists, encoded.truth_users, encoded.truth_pairs, encoded.n_items)
        columns = {
            f"{metric}@{k}": FUNCTIONS[metric](hits, encoded.n_relevant, k)
            for metric in METRICS
            for k in ks
        }
        catalog = {}
        if context is not None:
            item_names = encoded.item_names.to_numpy(zero_copy_only=False)
            per_user, catalog = context.measure(lists, item_names, ks)
            columns.update(per_user)
        results.append(
            Evaluation(
                ks=ks,
                per_user=pd.DataFrame(columns, index=index),
                users_evaluated=len(encoded.truth_users),
                users_missing=int((in_truth & ~ranked).sum()),
                users_ignored=int((ranked & ~in_truth).sum()),
                longest_list=longest,
                sources={"rankings": name},
                catalog=catalog,
            )
        )
    return results


def evaluate_frames(
    rankings: pd.DataFrame | pa.Table, truth: pd.DataFrame | pa.Table, ks: list[int]
) -> Evaluation:
    """Score one run against the truth (see evaluate_runs)."""
    return evaluate_runs(truth, [rankings], ks)[0]


def evaluate_files(
    rankings_paths: str | list[str],
    truth_path: str,
    ks: list[int],
    *,
    context: beyond_accuracy.Context | None = None,
) -> list[Evaluation] | Evaluation:
    """Read runs and a truth file and evaluate them; one path in, one Evaluation out."""
    single = isinstance(rankings_paths, str)
    paths = [rankings_paths] if single else list(rankings_paths)
    runs = [read_rankings(path) for path in paths]
    results = evaluate_runs(read_truth(truth_path), runs, ks, names=paths, context=context)
    for result in results:
        result.sources["truth"] = truth_path
    return results[0] if single else results


def evaluate_impression_files(
    rankings_paths: list[str], impressions_path: str, ks: list[int]
) -> list[Evaluation]:
    """Score every run on the impressions of one log (see evaluation.impressions)."""
    log = read_impressions(impressions_path)
    counts = log.counts()
    users = int(pd.unique(log.users.to_numpy(zero_copy_only=False)).size)
    results = []
    for path in rankings_paths:
        per_impression, unscored = evaluate_impressions(log, read_rankings(path), ks)
        results.append(
            Evaluation(
                ks=sorted({*ks, *MIND_KS}),
                per_user=per_impression,
                users_evaluated=users,
                users_missing=0,
                users_ignored=0,
                longest_list=max(ks),
                sources={"rankings": path, "impressions": impressions_path},
                impressions={**counts, "without_scored_item": unscored},
            )
        )
    return results


def build_report(
    runs: list[Evaluation], *, ci: bool = False, resamples: int = 1000, seed: int = 0
) -> Report:
    """Add 95% bootstrap intervals (if `ci`) and paired tests of each run against the first."""
    report = Report(runs, resamples=resamples if ci else 0)
    if ci:
        if resamples < 1:
            raise InputError(f"{flag('resamples')} {resamples}: must be at least 1")
        for run in runs:
            lows, highs = stats.bootstrap_ci(
                run.per_user.to_numpy(), resamples=resamples, seed=seed
            )
            report.intervals[run.name] = {
                column: (float(lo), float(hi))
                for column, lo, hi in zip(run.per_user.columns, lows, highs, strict=True)
            }
    reference = runs[0]
    for run in runs[1:]:
        columns = [c for c in reference.per_user.columns if c in run.per_user.columns]
        test = stats.paired_tests(
            reference.per_user[columns].to_numpy(), run.per_user[columns].to_numpy(), seed=seed
        )
        report.comparisons.append(Comparison(run.name, reference.name, columns, test))
    return report


def per_user_frame(runs: list[Evaluation]) -> pd.DataFrame:
    """All runs' per-user values in one long table: run, user_id, one column per metric."""
    frames = [run.per_user.reset_index().assign(run=run.name) for run in runs]
    frame = pd.concat(frames, ignore_index=True)
    return frame[["run", "user_id", *[c for c in frame.columns if c not in ("run", "user_id")]]]


def evaluate_report(
    rankings_paths: list[str],
    truth_path: str | None,
    ks: list[int],
    *,
    impressions_path: str | None = None,
    items_path: str | None = None,
    train_path: str | None = None,
    ci: bool = False,
    resamples: int = 1000,
    seed: int = 0,
) -> Report:
    """The whole `llmrec evaluate`: runs × truth (or × an impression log), beyond-accuracy
    measures, intervals, tests."""
    if len(set(rankings_paths)) != len(rankings_paths):
        raise InputError("the same rankings file is given twice; give each run once")
    if (truth_path is None) == (impressions_path is None):
        raise InputError(
            f"give held-out interactions with {flag('truth')} or an impression log with "
            f"{flag('impressions')} (one of the two)"
        )
    if impressions_path is not None:
        if items_path or train_path:
            raise InputError(
                f"{flag('items')} and {flag('train')} measure ranked lists against held-out "
                f"truth; leave them out with {flag('impressions')}"
            )
        runs = evaluate_impression_files(list(rankings_paths), impressions_path, ks)
        return build_report(runs, ci=ci, resamples=resamples, seed=seed)
    context = beyond_accuracy.Context.from_files(items_path, train_path)
    runs = evaluate_files(list(rankings_paths), truth_path, ks, context=context)
    return build_report(runs, ci=ci, resamples=resamples, seed=seed)
