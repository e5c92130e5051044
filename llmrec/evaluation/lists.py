"""Rankings and truth files → per-user lists of item codes and hit matrices.

Ids are dictionary-encoded once by Arrow; each run becomes a (users × K) matrix of item codes;
duplicate (user, item) rows keep their best rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..io.tables import read_arrow


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


def as_arrow(frame: pd.DataFrame | pa.Table) -> pa.Table:
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
