"""Exact top-k by dot product on the CPU, in numpy alone: what plain `llmrec rank` runs.

Users meet items in tiles small enough to stay in the CPU's cache (TILE_USERS × TILE_ITEMS),
each one float32 product through numpy's BLAS. Every user keeps a threshold: the k-th best score
among the candidates kept so far, which can only rise and never passes the final k-th score. A
tile's scores are compared with it in one pass, and only the few that reach it are merged into
the user's running top k. The first tile of each user starts the threshold from its own column
groups: the k-th largest of 4k group maxima is a score that at least k items reach.

No torch: the command that ranks plain vectors on the CPU imports numpy and pyarrow only.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..data.history import Seen

TILE_USERS = 1024  # users per product: a 1,024 × 8,192 float32 tile is 32 MiB (in L3)
TILE_ITEMS = 8192
LOWEST = np.finfo(np.float32).min  # thresholds start here, so −inf (seen) is never kept


def blas_top_k(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    *,
    seen: Seen | None = None,
    budget_bytes: int | None = None,
    threads: int | None = None,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield (start, stop, values, columns) per block of users: each user's k best items by
    float32 dot product, ordered by (score desc, column asc), seen items excluded; entries past
    a user's last rankable item are −inf (column 0). k ≤ the number of items.

    User tiles run on `threads` threads (default: as many as numpy's BLAS would use), each with
    a one-thread BLAS, so that no core waits while another compares scores (numpy's BLAS keeps
    to one thread in this whole process until the last block is taken). Tiles shrink so that
    every thread's scores and mask fit `budget_bytes` together.
    """
    threads = max(1, threads or blas_threads())
    width = min(TILE_ITEMS, max(len(items), 1))
    rows = TILE_USERS
    if budget_bytes is not None:
        rows = max(1, min(rows, budget_bytes // (threads * width * 5)))
    spans = [(a, min(a + rows, len(users))) for a in range(0, len(users), rows)]
    buffers = threading.local()

    def rank_tile(a: int, b: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        if not hasattr(buffers, "scores"):
            buffers.scores = np.empty(rows * width, dtype=np.float32)
            buffers.mask = np.empty(rows * width, dtype=bool)
        seen_here = seen_pairs(seen, a, b)
        values, columns = _user_tile(
            users[a:b], items, k, seen_here, width, buffers.scores, buffers.mask
        )
        return a, b, values, columns

    threads = min(threads, len(spans))
    if threads <= 1:
        yield from (rank_tile(a, b) for a, b in spans)
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        for a, b in spans:
            pending.append(pool.submit(rank_tile, a, b))
            if len(pending) > 2 * threads:  # a few tiles ahead of the reader, no more
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def blas_threads() -> int:
    """The threads numpy's BLAS runs a product on here."""
    from threadpoolctl import threadpool_info

    counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return max(counts, default=1)


def _user_tile(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    seen: tuple[np.ndarray, np.ndarray],
    width: int,
    scores: np.ndarray,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The top k of a few users over every item, tile by tile (see the module docstring)."""
    n = len(users)
    best = np.full((n, k), EMPTY, dtype=np.int64)  # `rank_keys`, ascending: best first
    threshold = np.full(n, LOWEST, dtype=np.float32)
    for a in range(0, len(items), width):
        b = min(a + width, len(items))
        tile = scores[: n * (b - a)].reshape(n, b - a)
        np.matmul(users, items[a:b].T, out=tile)
        _mask_seen(tile, seen, a, b)
        if a == 0:
            np.maximum(threshold, _reached_by_k(tile, k), out=threshold)
        hit = mask[: tile.size].reshape(tile.shape)
        np.greater_equal(tile, threshold[:, None], out=hit)
        at = np.flatnonzero(hit)
        if len(at):
            rows = at // (b - a)
            _merge(best, rows, rank_keys(tile.ravel()[at], at - rows * (b - a) + a), k)
            threshold = np.maximum(key_values(best[:, k - 1]), LOWEST)
    return key_values(best), key_columns(best)


def _reached_by_k(tile: np.ndarray, k: int) -> np.ndarray:
    """Per row, a score that at least k of the row's entries reach: the k-th largest maximum of
    4k column groups (the whole row's k-th largest when it is too narrow to group)."""
    n, width = tile.shape
    groups = 4 * k
    if width < 2 * groups:
        if width <= k:
            return np.full(n, LOWEST, dtype=np.float32)
        return np.partition(tile, width - k, axis=1)[:, width - k]
    size = width // groups
    maxima = tile[:, : groups * size].reshape(n, groups, size).max(axis=2)
    return np.partition(maxima, groups - k, axis=1)[:, groups - k]


def _merge(best: np.ndarray, rows: np.ndarray, keys: np.ndarray, k: int) -> None:
    """Merge new candidates (`rows` ascending, their `keys`) into the rows of `best` they hit:
    each such row keeps its k smallest keys of both, sorted."""
    hit, first, counts = np.unique(rows, return_index=True, return_counts=True)
    padded = np.full((len(hit), k + int(counts.max())), EMPTY, dtype=np.int64)
    padded[:, :k] = best[hit]
    position = np.arange(len(rows)) - np.repeat(first, counts)
    padded[np.repeat(np.arange(len(hit)), counts), k + position] = keys
    padded.sort(axis=1)
    best[hit] = padded[:, :k]


EMPTY = np.iinfo(np.int64).max  # the key of no item: after every real one


def rank_keys(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """int64 keys that sort ascending as (score desc, column asc): the float32 score's bits in
    an order-preserving form, flipped (32 bits), above the column (31 bits). −0.0 counts as
    0.0."""
    bits = (values + np.float32(0.0)).view(np.int32).astype(np.int64)
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # signed ints in the floats' order
    return ((0x7FFFFFFF - ordered) << 31) | columns


def key_values(keys: np.ndarray) -> np.ndarray:
    """The float32 scores of `rank_keys` (−inf for EMPTY)."""
    ordered = 0x7FFFFFFF - (keys >> 31)
    bits = ordered ^ ((ordered >> 31) & 0x7FFFFFFF)
    values = bits.astype(np.int32).view(np.float32)
    return np.where(keys == EMPTY, np.float32(-np.inf), values)


def key_columns(keys: np.ndarray) -> np.ndarray:
    """The columns of `rank_keys` (0 for EMPTY)."""
    return np.where(keys == EMPTY, 0, keys & 0x7FFFFFFF)


def seen_pairs(seen: Seen | None, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(row in the block, column) of every seen item of users [start, stop), sorted by column:
    what `_mask_seen` sets to −inf, tile by tile."""
    if seen is None:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    counts = np.diff(seen.indptr[start : stop + 1])
    rows = np.repeat(np.arange(stop - start), counts)
    columns = np.asarray(seen.indices[seen.indptr[start] : seen.indptr[stop]], dtype=np.int64)
    order = np.argsort(columns, kind="stable")
    return rows[order], columns[order]


def _mask_seen(tile: np.ndarray, seen: tuple[np.ndarray, np.ndarray], a: int, b: int) -> None:
    """Set the tile's scores of seen items (catalog columns a … b − 1) to −inf."""
    rows, columns = seen
    lo, hi = np.searchsorted(columns, [a, b])
    if hi > lo:
        tile[rows[lo:hi], columns[lo:hi] - a] = -np.inf
