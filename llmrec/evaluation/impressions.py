"""Impression logs × rankings → per-impression AUC, MRR and nDCG (MIND), CTR@k and conversion@k.

An impression is the set of items shown together to one user, some of them clicked (and
perhaps converted). A run scores each shown item by its place in that user's ranked list; an
item the list does not hold is "not recommended" and scores below every listed one. Within
each impression the items are then re-ranked by that score, and (MIND's evaluation script,
binary gains):

- AUC = P(a clicked item scores above a shown, unclicked one), a tie counting 1/2
  (the Mann-Whitney statistic, as sklearn's roc_auc_score);
- MRR = Σ_{clicked} 1 / rank ÷ #clicked  (every click counts, not only the first);
- nDCG@k = Σ_{clicked, rank ≤ k} 1 / log2(rank + 1) ÷ Σ_{i ≤ min(#clicked, k)} 1 / log2(i + 1);
- CTR@k = 1 when a clicked item is among the impression's top k, over impressions with a
  click; conversion@k the same for converted items, over impressions with a conversion.

Tie rule for ranks: items with equal scores are ordered with the clicked (or converted) ones
last, so a run earns nothing from ties, and unranked items never beat chance by log order.
AUC is undefined for impressions whose items are all clicked or all unclicked, and MRR and
nDCG for impressions without a click: those cells are NaN and left out of every mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..io.tables import path_label, read_arrow

REQUIRED = ("impression_id", "user_id", "item_id", "clicked")
MIND_KS = (5, 10)
CONVENTIONS = (
    "per impression, averaged over impressions; items re-ranked within each impression by the "
    "run (an item missing from the user's list ranks below every listed one); AUC, MRR and "
    "nDCG as MIND's evaluation (binary gains, MRR over every click); equal scores count 1/2 "
    "in AUC and place clicked items last elsewhere; AUC needs a click and a non-click, MRR and "
    "nDCG a click; CTR@k over impressions with a click, conversion@k over those with a "
    "conversion"
)
TRUE_WORDS = ("1", "true", "yes", "1.0")
FALSE_WORDS = ("0", "false", "no", "0.0", "")


@dataclass
class ImpressionLog:
    """An impression log as integer codes: one row per shown item, grouped by impression."""

    names: pa.Array  # impression code → impression id, in first-seen order
    impression: np.ndarray  # impression code of each row
    users: pa.Array  # user id of each row
    items: pa.Array  # item id of each row
    clicked: np.ndarray  # bool per row
    converted: np.ndarray | None  # bool per row, when the log has a `converted` column

    def counts(self) -> dict[str, int]:
        """How many impressions the log holds, and how many have a click (and a conversion)."""

        def having(flags: np.ndarray) -> int:
            return int((np.bincount(self.impression, flags, len(self.names)) > 0).sum())

        counts = {"evaluated": len(self.names), "with_click": having(self.clicked)}
        if self.converted is not None:
            counts["with_conversion"] = having(self.converted)
        return counts


def read_impressions(path: str) -> ImpressionLog:
    """Read `impression_id,user_id,item_id,clicked[,converted]` rows, checking that every
    impression belongs to one user and that the flags are 0/1."""
    table = read_arrow(
        path,
        required=REQUIRED,
        strings=("converted",),
        what="impression log",
        hint="impression logs need impression_id,user_id,item_id,clicked[,converted] columns",
        select=lambda names: [*REQUIRED, *(["converted"] if "converted" in names else [])],
    )
    encoded = table.column("impression_id").dictionary_encode().combine_chunks()
    impression = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if table.column("impression_id").null_count or table.column("user_id").null_count:
        raise InputError(f"{path_label(path)}: empty impression_id or user_id; fill every row")
    users = table.column("user_id").combine_chunks()
    _check_one_user(path, impression, users, encoded.dictionary)
    converted = None
    if "converted" in table.column_names:
        converted = _flags(path, table, "converted")
    return ImpressionLog(
        names=encoded.dictionary,
        impression=impression,
        users=users,
        items=table.column("item_id").combine_chunks(),
        clicked=_flags(path, table, "clicked"),
        converted=converted,
    )


def _flags(path: str, table: pa.Table, column: str) -> np.ndarray:
    """A 0/1 (or true/false) column as booleans; anything else names its first row."""
    words = pc.utf8_lower(pc.utf8_trim_whitespace(pc.fill_null(table.column(column), "")))
    true = pc.is_in(words, pa.array(TRUE_WORDS)).to_numpy(zero_copy_only=False)
    false = pc.is_in(words, pa.array(FALSE_WORDS)).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~(true | false))
    if len(bad):
        value = table.column(column)[int(bad[0])].as_py()
        raise InputError(
            f"{path_label(path)}: row {int(bad[0]) + 2}: {column} is {value!r}; "
            "use 1 for yes and 0 for no"
        )
    return true


def _check_one_user(path: str, impression: np.ndarray, users: pa.Array, names: pa.Array) -> None:
    """Every row of an impression must name the same user."""
    user_codes = users.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    first_user = np.full(len(names), -1, dtype=np.int64)
    first_user[impression[::-1]] = user_codes[::-1]  # the last write wins: each first row
    bad = np.flatnonzero(first_user[impression] != user_codes)
    if len(bad):
        row = int(bad[0])
        raise InputError(
            f"{path_label(path)}: row {row + 2}: impression {names[impression[row]].as_py()!r} "
            "is shown to more than one user; give each impression one user_id"
        )


def run_scores(log: ImpressionLog, run: pa.Table) -> np.ndarray:
    """Each log row's score under a run: higher is better, −inf where the user's list lacks
    the item. A list ordered by `rank` scores −rank; by `score`, the score; else −position.
    A (user, item) listed twice keeps its best score."""
    log_users, run_users = _shared_codes([log.users, run.column("user_id")])
    log_items, run_items = _shared_codes([log.items, run.column("item_id")])
    n_items = int(max(log_items.max(initial=-1), run_items.max(initial=-1))) + 1
    value = _run_values(run)
    valid = (run_users >= 0) & (run_items >= 0)
    run_keys, value = (run_users * n_items + run_items)[valid], value[valid]
    if len(run_keys) == 0:
        return np.full(len(log_users), -np.inf)
    order = np.lexsort((-value, run_keys))  # per key, its best value first
    keys, first = np.unique(run_keys[order], return_index=True)
    best = value[order][first]
    log_keys = log_users * n_items + log_items
    at = np.minimum(np.searchsorted(keys, log_keys), len(keys) - 1)
    found = (keys[at] == log_keys) & (log_users >= 0) & (log_items >= 0)
    return np.where(found, best[at], -np.inf)


def _shared_codes(columns: list[pa.Array | pa.ChunkedArray]) -> tuple[np.ndarray, np.ndarray]:
    """Codes of two string columns over one dictionary (−1 for missing values)."""
    chunks = []
    for column in columns:
        column = column.cast(pa.string())
        chunks += column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    encoded = pa.chunked_array(chunks, pa.string()).dictionary_encode().combine_chunks()
    codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    return codes[: len(columns[0])], codes[len(columns[0]) :]


def _run_values(run: pa.Table) -> np.ndarray:
    def numeric(column: str) -> np.ndarray:
        values = run.column(column).to_numpy().astype(np.float64)
        return np.nan_to_num(values, nan=-np.inf if column == "score" else np.inf)

    if "rank" in run.column_names:
        return -numeric("rank")
    if "score" in run.column_names:
        return numeric("score")
    users = run.column("user_id").cast(pa.string()).dictionary_encode().combine_chunks()
    codes = users.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], codes[order])
    position = np.empty(len(codes), dtype=np.float64)
    position[order] = np.arange(len(codes)) - starts
    return -position


def impression_metrics(
    impression: np.ndarray,
    score: np.ndarray,
    clicked: np.ndarray,
    converted: np.ndarray | None,
    ks: list[int],
) -> dict[str, np.ndarray]:
    """Per-impression metric columns (see the module docstring); NaN where undefined."""
    n = int(impression.max(initial=-1)) + 1
    clicks = np.bincount(impression, weights=clicked, minlength=n)
    columns = {"auc": auc(impression, score, clicked, n)}
    rank = within_ranks(impression, score, clicked)
    with np.errstate(invalid="ignore", divide="ignore"):
        gains = np.where(clicked, 1.0 / rank, 0.0)
        columns["mrr"] = np.bincount(impression, weights=gains, minlength=n) / clicks
    for k in sorted({*MIND_KS, *ks}):
        columns[f"ndcg@{k}"] = ndcg(impression, rank, clicked, clicks, k)
    for k in ks:
        columns[f"ctr@{k}"] = hit_at(impression, rank, clicked, clicks, k)
    if converted is not None:
        conversions = np.bincount(impression, weights=converted, minlength=n)
        converted_rank = within_ranks(impression, score, converted)
        for k in ks:
            columns[f"conversion@{k}"] = hit_at(
                impression, converted_rank, converted, conversions, k
            )
    return columns


def within_ranks(impression: np.ndarray, score: np.ndarray, label: np.ndarray) -> np.ndarray:
    """1-based rank of each row within its impression by descending score, ties placing
    labelled rows last."""
    order = np.lexsort((label, -score, impression))
    sorted_impression = impression[order]
    starts = np.searchsorted(sorted_impression, sorted_impression)
    rank = np.empty(len(order), dtype=np.float64)
    rank[order] = np.arange(len(order)) - starts + 1
    return rank


def auc(impression: np.ndarray, score: np.ndarray, clicked: np.ndarray, n: int) -> np.ndarray:
    """Per-impression ROC AUC from mid-ranks: (Σ ranks of clicks − P(P+1)/2) / (P·N)."""
    order = np.lexsort((score, impression))
    imp, value = impression[order], score[order]
    new_group = np.r_[True, (imp[1:] != imp[:-1]) | (value[1:] != value[:-1])]
    group = np.cumsum(new_group) - 1
    first = np.flatnonzero(new_group)
    last = np.r_[first[1:], len(order)] - 1
    impression_start = np.searchsorted(imp, imp)
    mid_rank = np.empty(len(order), dtype=np.float64)
    mid_rank[order] = (first[group] + last[group]) / 2.0 - impression_start + 1
    positives = np.bincount(impression, weights=clicked, minlength=n)
    negatives = np.bincount(impression, minlength=n) - positives
    rank_sum = np.bincount(impression, weights=np.where(clicked, mid_rank, 0.0), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), value, np.nan)


def ndcg(
    impression: np.ndarray, rank: np.ndarray, clicked: np.ndarray, clicks: np.ndarray, k: int
) -> np.ndarray:
    """Per-impression nDCG@k with binary gains (MIND's dcg_score / ideal dcg_score)."""
    gains = np.where(clicked & (rank <= k), 1.0 / np.log2(rank + 1), 0.0)
    dcg = np.bincount(impression, weights=gains, minlength=len(clicks))
    ideal = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(clicks > 0, dcg / ideal[np.minimum(clicks, k).astype(np.int64)], np.nan)


def hit_at(
    impression: np.ndarray, rank: np.ndarray, label: np.ndarray, labelled: np.ndarray, k: int
) -> np.ndarray:
    """1 when a labelled row is within the impression's top k, 0 when not, NaN without one."""
    hits = np.bincount(impression, weights=label & (rank <= k), minlength=len(labelled))
    return np.where(labelled > 0, (hits > 0).astype(np.float64), np.nan)


def evaluate_impressions(
    log: ImpressionLog, run: pa.Table, ks: list[int]
) -> tuple[pd.DataFrame, int]:
    """One run's per-impression metrics, indexed by impression id (in the log's order), and
    how many impressions hold no item of their user's list."""
    score = run_scores(log, run)
    columns = impression_metrics(log.impression, score, log.clicked, log.converted, ks)
    index = pd.Index(log.names.to_numpy(zero_copy_only=False), name="impression_id", dtype=object)
    listed = np.isfinite(score)
    unscored = len(log.names) - np.unique(log.impression[listed]).size
    return pd.DataFrame(columns, index=index), int(unscored)
