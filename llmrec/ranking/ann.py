"""Approximate top-k through a faiss index (`ann_index`), for catalogs too large to score
exactly in time: each block of users asks the index for its k best items plus as many as the
block's longest history, drops the items a user has seen, and keeps the k best left.

`--recall-check N` ranks N users, drawn at random, exactly as well (`tiles.vector_top_k`) and
reports recall@k: the share of their exact top-k the index found.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..data.history import Seen
from ..options import SearchOptions
from .ann_index import open_index
from .tiles import vector_top_k
from .topk import sorted_rows

CANDIDATE_BYTES = 16  # per candidate of a block: faiss's distance and label, and our copies
BLOCK_USERS = 16384  # users per faiss search, at most (progress is reported per block)


@dataclass
class SearchReport:
    """What an approximate search did, for the run's summary."""

    index: str = ""  # how the index came to be, and its query-time setting
    recall: float | None = None  # mean recall@k of the checked users
    checked: int = 0  # users ranked exactly for the recall check
    k: int = 0

    def summary(self) -> str:
        """e.g. "ivf index built in 3.1 s; nprobe 32 of 1,000 lists; recall@10 0.9731 on 500
        users (against exact search)"."""
        if self.recall is None:
            return self.index
        return (
            f"{self.index}; recall@{self.k} {self.recall:.4f} on {self.checked:,} users "
            "(against exact search)"
        )


@dataclass
class Approximate:
    """An approximate search as asked (`search`), and what it reports back once done."""

    search: SearchOptions
    report: SearchReport = field(default_factory=SearchReport)


def ann_top_k(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    seen: Seen | None,
    budget_bytes: int,
    ann: Approximate,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield (start, stop, values, columns) per block of users, as `vector_top_k` does, from the
    index `ann.search` names; excluded or missing entries are −inf. Fills `ann.report`."""
    search, report = ann.search, ann.report
    index = open_index(items, search.index, search.index_path)
    report.index = f"{search.index} index {index.note}; " + index.configure(
        search.nprobe, search.ef_search
    )
    check = RecallCheck.draw(users, items, k, seen, search.recall_check)
    width = CANDIDATE_BYTES * (k + longest(seen, 0, len(users)))
    rows = max(1, min(BLOCK_USERS, budget_bytes // (width + 1)))
    for start in range(0, len(users), rows):
        stop = min(start + rows, len(users))
        fetch = min(len(items), k + longest(seen, start, stop))
        queries = np.ascontiguousarray(users[start:stop], dtype=np.float32)
        distances, labels = index.faiss_index.search(queries, fetch)
        values, columns = best_unseen(distances, labels, seen, start, k)
        check.observe(start, stop, columns, values)
        yield start, stop, values, columns
    report.recall, report.checked, report.k = check.recall(), len(check.rows), k


def longest(seen: Seen | None, start: int, stop: int) -> int:
    """The most seen items of any user in [start, stop)."""
    if seen is None or stop <= start:
        return 0
    return int(np.diff(seen.indptr[start : stop + 1]).max())


def best_unseen(distances: np.ndarray, labels: np.ndarray, seen: Seen | None, start: int, k: int):
    """The k best candidates of each user that are not seen, ordered by (score desc, column
    asc); entries beyond a user's candidates are −inf (column 0)."""
    drop = labels < 0
    if seen is not None:
        drop |= is_seen(seen, start, labels)
    values = np.where(drop, -np.inf, distances).astype(np.float32)
    columns = np.where(labels < 0, 0, labels).astype(np.int64)
    values, columns = sorted_rows(values, columns)
    return values[:, :k], columns[:, :k]


def is_seen(seen: Seen, start: int, labels: np.ndarray) -> np.ndarray:
    """Whether each candidate (row r, item labels[r, j]) is in user start + r's seen items."""
    n_rows, width = labels.shape
    stride = np.int64(max(int(labels.max(initial=0)), int(seen.indices.max(initial=0))) + 1)
    lo, hi = seen.indptr[start], seen.indptr[start + n_rows]
    owners = np.repeat(
        np.arange(n_rows, dtype=np.int64), np.diff(seen.indptr[start : start + n_rows + 1])
    )
    known = np.sort(owners * stride + seen.indices[lo:hi])
    asked = (np.arange(n_rows, dtype=np.int64)[:, None] * stride + labels).ravel()
    where = np.minimum(np.searchsorted(known, asked), max(len(known) - 1, 0))
    found = known[where] == asked if len(known) else np.zeros(len(asked), dtype=bool)
    return found.reshape(n_rows, width)


@dataclass
class RecallCheck:
    """Users ranked exactly, to compare with what the index gives them."""

    rows: np.ndarray  # the checked users' rows, sorted
    exact: np.ndarray  # (checked, k) their exact top-k columns, −1 where excluded
    found: np.ndarray  # (checked,) how many of those the index found

    @classmethod
    def draw(
        cls, users: np.ndarray, items: np.ndarray, k: int, seen: Seen | None, n: int
    ) -> RecallCheck:
        """Draw n users (seeded) and rank them exactly."""
        rows = np.sort(
            np.random.default_rng(0).choice(len(users), min(n, len(users)), replace=False)
        )
        exact = np.full((len(rows), k), -1, dtype=np.int64)
        if len(rows):
            subset = seen_of(seen, rows) if seen is not None else None
            for a, b, values, columns in vector_top_k(users[rows], items, k, seen=subset):
                exact[a:b] = np.where(np.isfinite(values), columns, -1)
        return cls(rows, exact, np.zeros(len(rows), dtype=np.int64))

    def observe(self, start: int, stop: int, columns: np.ndarray, values: np.ndarray) -> None:
        """Count how much of each checked user's exact top-k the index found in [start, stop)."""
        lo, hi = np.searchsorted(self.rows, [start, stop])
        if hi == lo:
            return
        got = np.where(np.isfinite(values), columns, -2)[self.rows[lo:hi] - start]
        self.found[lo:hi] = (self.exact[lo:hi, :, None] == got[:, None, :]).any(axis=2).sum(axis=1)

    def recall(self) -> float | None:
        """Mean recall@k over the checked users who have any item to rank."""
        wanted = (self.exact >= 0).sum(axis=1)
        if not len(self.rows) or not wanted.any():
            return None
        return float((self.found[wanted > 0] / wanted[wanted > 0]).mean())


def seen_of(seen: Seen, rows: np.ndarray) -> Seen:
    """The seen items of some users (`rows`), as CSR rows in that order."""
    counts = np.diff(seen.indptr)[rows]
    indptr = np.concatenate([[0], np.cumsum(counts)])
    offsets = np.repeat(seen.indptr[rows] - indptr[:-1], counts)
    return Seen(indptr, seen.indices[np.arange(indptr[-1]) + offsets])
