"""Users × items → top-K per user: blocked scoring, seen-item exclusion, deterministic ties.

Users are scored in blocks sized so that one block's score matrix stays within a memory
budget, whatever the number of users and items. Within a list, items are ordered by score
(descending) and then by item id, so the same input always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError
from .profile import History, map_history, profile_users
from .tables import open_output, read_interactions
from .vectors import VectorTable, check_compatible, read_vectors

DEFAULT_BLOCK_BYTES = 256 * 2**20
RANKING_COLUMNS = ["user_id", "rank", "item_id", "score"]


@dataclass
class Seen:
    """Items to exclude per user, as CSR rows aligned with the users being ranked."""

    indptr: np.ndarray
    indices: np.ndarray


def block_rows(n_items: int, budget_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Users per block so that a block's float32 scores (plus a same-size mask) fit the budget."""
    return max(1, budget_bytes // (max(n_items, 1) * 8))


def top_k(scores, k: int):
    """Top-k of each row of a score matrix, ordered by (score desc, column asc).

    torch.topk leaves ties in no particular order, so rows whose k-th score is shared by
    items left outside the top-k are redone with a stable sort, and every selected list is
    re-ordered by (score desc, column asc).
    """
    import torch

    values, columns = torch.topk(scores, k, dim=1)
    boundary_ties = (scores >= values[:, -1:]).sum(dim=1) > k
    if boundary_ties.any():
        rows = boundary_ties.nonzero().squeeze(1)
        tied_values, tied_columns = torch.sort(scores[rows], dim=1, descending=True, stable=True)
        values[rows], columns[rows] = tied_values[:, :k], tied_columns[:, :k]
    columns, by_column = columns.sort(dim=1)
    values = values.gather(1, by_column)
    values, by_score = values.sort(dim=1, descending=True, stable=True)
    return values, columns.gather(1, by_score)


def rank_blocks(
    users: VectorTable,
    items: VectorTable,
    k: int,
    *,
    seen: Seen | None = None,
    budget_bytes: int = DEFAULT_BLOCK_BYTES,
    on_block: Callable[[int], None] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield ranking rows (user_id, rank, item_id, score) block by block, in user order.

    `users` and `items` must be sorted by id (see VectorTable.sorted_by_id) so that the
    output is sorted by user and ties fall to the smaller item id.
    """
    import torch

    if k < 1:
        raise InputError(f"-k {k}: must be at least 1")
    item_matrix = torch.from_numpy(items.vectors)
    kk = min(k, len(items))
    step = block_rows(len(items), budget_bytes)
    for start in range(0, len(users), step):
        stop = min(start + step, len(users))
        scores = torch.from_numpy(users.vectors[start:stop]) @ item_matrix.T
        if seen is not None:
            lo, hi = seen.indptr[start], seen.indptr[stop]
            rows = np.repeat(np.arange(stop - start), np.diff(seen.indptr[start : stop + 1]))
            scores[torch.from_numpy(rows), torch.from_numpy(seen.indices[lo:hi])] = -torch.inf
        values, columns = top_k(scores, kk)
        yield _block_frame(users.ids[start:stop], items.ids, values.numpy(), columns.numpy())
        if on_block:
            on_block(stop - start)


def _block_frame(
    user_ids: np.ndarray, item_ids: np.ndarray, values: np.ndarray, columns: np.ndarray
) -> pd.DataFrame:
    """Flatten a block's top-k into ranking rows, dropping excluded (−inf) entries."""
    n_users, kk = values.shape
    valid = np.isfinite(values)
    return pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, kk)[valid.ravel()],
            "rank": np.tile(np.arange(1, kk + 1), n_users)[valid.ravel()],
            "item_id": item_ids[columns[valid]],
            "score": values[valid],
        }
    )


def write_rankings(blocks: Iterator[pd.DataFrame], handle) -> int:
    """Write ranking blocks as CSV to an open text handle; return the number of rows."""
    handle.write(",".join(RANKING_COLUMNS) + "\n")
    rows = 0
    for frame in blocks:
        frame.to_csv(handle, header=False, index=False, float_format="%.6f", lineterminator="\n")
        rows += len(frame)
    return rows


@dataclass
class RankResult:
    users: int
    items: int
    rows: int
    history: History | None


def rank_to_file(
    items_path: str,
    output: str,
    k: int,
    *,
    users_path: str | None = None,
    history_path: str | None = None,
    exclude_seen: bool = True,
    profile_options: dict | None = None,
    budget_bytes: int = DEFAULT_BLOCK_BYTES,
    on_start: Callable[[int], None] | None = None,
    on_block: Callable[[int], None] | None = None,
) -> RankResult:
    """Rank users (from a vector table, or profiled from a history) and write the CSV.

    With a history, its items are excluded from each user's list unless `exclude_seen` is off.
    """
    if k < 1:
        raise InputError(f"-k {k}: must be at least 1")
    items = read_vectors(items_path, "items").sorted_by_id()
    history = None
    if users_path:
        users = read_vectors(users_path, "users").sorted_by_id()
        check_compatible(users, items, users_path, items_path)
        if history_path:
            options = profile_options or {}
            interactions = read_interactions(
                history_path,
                **{
                    key: options[key]
                    for key in ("user_col", "item_col", "time_col")
                    if key in options
                },
            )
            history = map_history(interactions, items.ids)
    elif history_path:
        users, history = profile_users(history_path, items, **(profile_options or {}))
    else:
        raise InputError("give --users users.parquet or --user-history history.csv")
    seen = Seen(*history.seen(users.ids, len(items))) if history and exclude_seen else None
    if on_start:
        on_start(len(users))
    with open_output(output) as handle:
        rows = write_rankings(
            rank_blocks(users, items, k, seen=seen, budget_bytes=budget_bytes, on_block=on_block),
            handle,
        )
    return RankResult(len(users), len(items), rows, history)
