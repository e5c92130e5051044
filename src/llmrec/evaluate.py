"""Rankings × held-out truth → per-user metrics, their means, and the accounting of users.

Users in the truth but absent from a run score 0 on every metric and are counted; users
ranked but absent from the truth are ignored and counted; duplicate (user, item) rows keep
their best rank. Every run is scored on the same users: those of the truth.

The work is vectorised end to end: ids are dictionary-encoded once by Arrow, each run becomes
a (users × K) matrix of item codes, and metrics are functions of the hit matrix derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import beyond, stats
from .errors import InputError
from .metrics import FUNCTIONS, METRICS
from .tables import read_arrow


@dataclass
class Evaluation:
    """One run's per-user metric values and the accounting of which users were scored."""

    ks: list[int]
    per_user: pd.DataFrame  # index user_id, columns "ndcg@10", ... (+ per-user beyond metrics)
    users_evaluated: int
    users_missing: int  # in the truth, not in the rankings: scored 0
    users_ignored: int  # in the rankings, not in the truth
    longest_list: int  # most items ranked for one user
    sources: dict[str, str] = field(default_factory=dict)
    catalog: dict[str, float] = field(default_factory=dict)  # coverage@k, gini@k

    @property
    def name(self) -> str:
        return self.sources.get("rankings", "run")

    def summary(self) -> dict[str, float]:
        """Mean of every per-user metric over the evaluated users."""
        return {name: float(value) for name, value in self.per_user.mean().items()}


def parse_ks(text: str) -> list[int]:
    """`5,10,20` → [5, 10, 20], sorted and unique; every k must be a positive integer."""
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise InputError(f"-k {text!r}: give cut-offs as integers, e.g. -k 5,10,20") from exc
    if not ks or ks[0] < 1:
        raise InputError(f"-k {text!r}: every cut-off must be at least 1")
    return ks


def read_rankings(path: str) -> pa.Table:
    """Read a rankings file: user_id, item_id, and rank or score if present."""
    table = read_arrow(
        path,
        required=["user_id", "item_id"],
        what="rankings",
        hint="rankings need user_id and item_id columns (as 'llmrec rank' writes)",
        select=_ranking_columns,
    )
    for column in ("rank", "score"):
        kind = table.schema.field(column).type if column in table.column_names else None
        if kind is not None and not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise InputError(f"{path}: column {column!r} must be numeric")
    return table


def _ranking_columns(names: list[str]) -> list[str]:
    """Ids and the one column that orders the lists: rank, else score."""
    order = "rank" if "rank" in names else "score"
    return ["user_id", "item_id", order]


def read_truth(path: str) -> pa.Table:
    """Read held-out interactions; only user_id and item_id are used."""
    return read_arrow(
        path,
        required=["user_id", "item_id"],
        what="truth",
        hint="the truth file needs user_id and item_id columns",
        select=lambda names: ["user_id", "item_id"],
    )


def _arrow(frame: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name in ("user_id", "item_id"):
        i = table.column_names.index(name)
        table = table.set_column(i, name, table.column(name).cast(pa.string()))
    return table


@dataclass
class Encoded:
    """Ids of the truth and of every run as integer codes of shared dictionaries."""

    user_names: pa.Array  # code → user id
    item_names: pa.Array  # code → item id
    truth_users: np.ndarray  # codes of the truth users, in user-id order
    truth_pairs: np.ndarray  # sorted int64 keys user * n_items + item of the truth pairs
    n_relevant: np.ndarray  # per truth user
    runs: list[tuple[np.ndarray, np.ndarray, pa.Table]]  # (user codes, item codes, table)

    @property
    def n_items(self) -> int:
        return max(len(self.item_names), 1)


def encode(truth: pa.Table, runs: list[pa.Table]) -> Encoded:
    """Dictionary-encode user and item ids across the truth and all runs at once."""
    tables = [truth, *runs]
    user_codes, user_names = _codes([t.column("user_id") for t in tables])
    item_codes, item_names = _codes([t.column("item_id") for t in tables])
    valid = (user_codes[0] >= 0) & (item_codes[0] >= 0)
    n_items = max(len(item_names), 1)
    keys = np.unique(user_codes[0][valid] * n_items + item_codes[0][valid])
    users_of_pairs = keys // n_items
    present = np.unique(users_of_pairs)
    by_name = pc.sort_indices(user_names.take(pa.array(present))).to_numpy()
    truth_users = present[by_name]  # report users in id order
    n_relevant = np.bincount(users_of_pairs, minlength=len(user_names))[truth_users]
    runs_encoded = list(zip(user_codes[1:], item_codes[1:], runs, strict=True))
    return Encoded(user_names, item_names, truth_users, keys, n_relevant, runs_encoded)


def _codes(columns: list[pa.ChunkedArray]) -> tuple[list[np.ndarray], pa.Array]:
    """Integer codes (−1 for missing) of several string columns over one shared dictionary."""
    chunks = [chunk for column in columns for chunk in column.cast(pa.string()).chunks]
    encoded = pa.chunked_array(chunks, pa.string()).dictionary_encode().combine_chunks()
    codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    bounds = np.cumsum([0, *(len(c) for c in columns)])
    return [codes[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)], encoded.dictionary


def run_lists(
    users: np.ndarray,
    items: np.ndarray,
    table: pa.Table,
    encoded: Encoded,
    depth: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """A run as a (truth users × depth) matrix of item codes (−1 = no item), the users it
    ranks, and its longest list.

    Lists are ordered by `rank` when present, else by `score` descending with ties by item id,
    else by file order. A duplicate (user, item) keeps its best position. Files already
    grouped by user in list order (as `llmrec rank` writes them) are not sorted again.
    """
    valid = (users >= 0) & (items >= 0)
    if not valid.all():
        users, items, table = users[valid], items[valid], table.filter(pa.array(valid))
    keys = _order_keys(table, items, encoded.item_names)
    if not _grouped_in_order(users, keys):
        order = np.lexsort((np.arange(len(users)), *keys, users))
        users, items = users[order], items[order]
    position = _positions(users)
    lists = _fill_lists(users, items, position, encoded, depth)
    repeated = _rows_with_duplicates(lists)
    if len(repeated):  # drop later repeats, for the users that have any, and refill their lists
        affected = np.zeros(len(encoded.user_names), dtype=bool)
        affected[encoded.truth_users[repeated]] = True
        rows = np.flatnonzero(affected[users])
        keys = users[rows] * encoded.n_items + items[rows]
        rows = rows[~pd.Series(keys).duplicated().to_numpy()]
        lists[repeated] = -1
        sub = _fill_lists(users[rows], items[rows], _positions(users[rows]), encoded, depth)
        lists[repeated] = sub[repeated]
    ranked = np.bincount(users, minlength=len(encoded.user_names)) > 0
    return lists, ranked, int(position.max()) + 1 if len(position) else 0


def _order_keys(table: pa.Table, items: np.ndarray, item_names: pa.Array) -> list[np.ndarray]:
    """Sort keys within a user, least significant first (np.lexsort order)."""
    if "rank" in table.column_names:
        return [_numeric(table, "rank")]
    if "score" in table.column_names:
        name_rank = np.empty(len(item_names), dtype=np.int64)
        name_rank[pc.sort_indices(item_names).to_numpy()] = np.arange(len(item_names))
        return [name_rank[items], -_numeric(table, "score", missing=-np.inf)]
    return []


def _numeric(table: pa.Table, column: str, missing: float = np.inf) -> np.ndarray:
    """A column as floats; missing values become `missing` (so they sort last)."""
    values = table.column(column).to_numpy().astype(np.float64)
    return np.where(np.isnan(values), missing, values) if np.isnan(values).any() else values


def _grouped_in_order(users: np.ndarray, keys: list[np.ndarray]) -> bool:
    """Whether each user's rows are contiguous and already in `keys` order."""
    if len(users) == 0:
        return True
    boundary = users[1:] != users[:-1]
    if int(boundary.sum()) + 1 != np.count_nonzero(np.bincount(users)):
        return False
    undecided = ~boundary
    for key in reversed(keys):
        step = np.diff(key)
        if (step[undecided] < 0).any():
            return False
        undecided &= step == 0
    return True


def _positions(users: np.ndarray) -> np.ndarray:
    """0-based position of each row within its (contiguous) user group."""
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else users
    lengths = np.diff(np.r_[starts, len(users)])
    return np.arange(len(users)) - np.repeat(starts, lengths)


def _fill_lists(
    users: np.ndarray, items: np.ndarray, position: np.ndarray, encoded: Encoded, depth: int
) -> np.ndarray:
    row_of_user = np.full(len(encoded.user_names), -1, dtype=np.int64)
    row_of_user[encoded.truth_users] = np.arange(len(encoded.truth_users))
    rows = row_of_user[users]
    keep = (rows >= 0) & (position < depth)
    lists = np.full((len(encoded.truth_users), depth), -1, dtype=np.int64)
    lists[rows[keep], position[keep]] = items[keep]
    return lists


def _rows_with_duplicates(lists: np.ndarray) -> np.ndarray:
    """Rows of a list matrix in which an item appears more than once."""
    ordered = np.sort(lists, axis=1)
    return np.flatnonzero(((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(axis=1))


def hits_of(
    lists: np.ndarray, truth_users: np.ndarray, truth_pairs: np.ndarray, n_items: int
) -> np.ndarray:
    """0/1 matrix: whether each listed item is in its user's truth (sorted-key lookup)."""
    keys = truth_users[:, None] * n_items + lists
    found = np.minimum(np.searchsorted(truth_pairs, keys), len(truth_pairs) - 1)
    return ((truth_pairs[found] == keys) & (lists >= 0)).astype(np.int8)


def evaluate_runs(
    truth: pa.Table | pd.DataFrame,
    runs: list[pa.Table | pd.DataFrame],
    ks: list[int],
    *,
    names: list[str] | None = None,
    context: beyond.Context | None = None,
) -> list[Evaluation]:
    """Score every run against the same truth at every k in `ks`."""
    encoded = encode(_arrow(truth), [_arrow(r) for r in runs])
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
    context: beyond.Context | None = None,
) -> list[Evaluation] | Evaluation:
    """Read runs and a truth file and evaluate them; one path in, one Evaluation out."""
    single = isinstance(rankings_paths, str)
    paths = [rankings_paths] if single else list(rankings_paths)
    runs = [read_rankings(path) for path in paths]
    results = evaluate_runs(read_truth(truth_path), runs, ks, names=paths, context=context)
    for result in results:
        result.sources["truth"] = truth_path
    return results[0] if single else results


@dataclass
class Comparison:
    """A run against the reference run, over the same users, per metric column."""

    run: str
    reference: str
    columns: list[str]
    test: stats.PairedTest


@dataclass
class Report:
    """Every run's evaluation, with bootstrap intervals and comparisons when asked for."""

    runs: list[Evaluation]
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    resamples: int = 0

    @property
    def ks(self) -> list[int]:
        return self.runs[0].ks


def build_report(
    runs: list[Evaluation], *, ci: bool = False, resamples: int = 1000, seed: int = 0
) -> Report:
    """Add 95% bootstrap intervals (if `ci`) and paired tests of each run against the first."""
    report = Report(runs, resamples=resamples if ci else 0)
    if ci:
        if resamples < 1:
            raise InputError(f"--bootstrap {resamples}: must be at least 1")
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
    truth_path: str,
    ks: list[int],
    *,
    items_path: str | None = None,
    train_path: str | None = None,
    ci: bool = False,
    resamples: int = 1000,
    seed: int = 0,
) -> Report:
    """The whole `llmrec evaluate`: runs × truth, beyond-accuracy measures, intervals, tests."""
    if len(set(rankings_paths)) != len(rankings_paths):
        raise InputError("the same rankings file is given twice; give each run once")
    context = beyond.Context.from_files(items_path, train_path)
    runs = evaluate_files(list(rankings_paths), truth_path, ks, context=context)
    return build_report(runs, ci=ci, resamples=resamples, seed=seed)
