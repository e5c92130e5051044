"""Interactions mapped onto an item table, and the per-user items to exclude from rankings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .interactions import EncodedInteractions


@dataclass
class History:
    """Interactions mapped onto an item table, sorted by user then time (oldest first).

    The events come in one block per user, so the per-user `counts` say all that a per-event
    user index or age would; those two are derived on first use (12 bytes an event, not held
    by the strategies that need neither).
    """

    user_ids: np.ndarray  # distinct users with at least one known item, sorted
    counts: np.ndarray  # per user: how many of the events are theirs (each ≥ 1), int64
    item_index: np.ndarray  # per event, into the item table (int32)
    unknown_events: int  # events whose item is not in the item table
    unknown_items: int  # distinct such items
    users_without_known: int  # users all of whose events are unknown
    time: np.ndarray | None = None  # per event: its order key (unix seconds for dates), if kept
    weight: np.ndarray | None = None  # per event: the raw weight column, if one was read

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def starts(self) -> np.ndarray:
        """Per user: the position of their first event."""
        return np.cumsum(self.counts) - self.counts

    @cached_property
    def user_index(self) -> np.ndarray:
        """Per event: its user, an index into user_ids (int64)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), self.counts)

    @cached_property
    def age(self) -> np.ndarray:
        """Per event: how many of its user's events come after it (0 = the most recent)."""
        return _ages(self.counts)

    def user_sums(self, values: np.ndarray) -> np.ndarray:
        """Per user: the float64 sum of `values` (one per event) over their events."""
        if self.n_users == 0:
            return np.zeros(0)
        return np.add.reduceat(values, self.starts, dtype=np.float64)

    def seconds_old(self) -> np.ndarray:
        """Per event: time since the user's most recent event, in the time column's unit."""
        if self.time is None:
            raise ValueError("this History was mapped without its event times (keep_time=False)")
        if self.n_users == 0:
            return np.zeros(0)
        latest = np.maximum.reduceat(self.time, self.starts)
        return np.repeat(latest, self.counts) - self.time

    def event_rows(self, users: np.ndarray) -> np.ndarray:
        """Per event: the row of its user in `users` (−1 where the user is not listed)."""
        position = pd.Index(self.user_ids).get_indexer(users)
        row_of_user = np.full(self.n_users, -1, dtype=np.int64)
        known = position >= 0
        row_of_user[position[known]] = np.flatnonzero(known)
        return np.repeat(row_of_user, self.counts)

    def seen(self, users: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """CSR (indptr, indices) of the items each of `users` (in that order) has seen."""
        rows = self.event_rows(users)
        keep = rows >= 0
        rows, cols = rows[keep], self.item_index[keep]
        order = np.lexsort((cols, rows))
        indptr = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(users)), out=indptr[1:])
        return indptr, cols[order]


def map_history(
    interactions: pd.DataFrame, item_ids: np.ndarray, weight_col: str | None = None
) -> History:
    """Attach item-table rows to interactions (`user_id`, `item_id`, `order` columns)."""
    extra = [weight_col] if weight_col else []
    return map_encoded(EncodedInteractions.from_frame(interactions, extra), item_ids, weight_col)


def map_encoded(
    events: EncodedInteractions,
    item_ids: np.ndarray,
    weight_col: str | None = None,
    *,
    keep_time: bool = True,
) -> History:
    """Attach item-table rows to encoded interactions; sort by user, then time, then file order.

    Events whose item is not in the table are sorted behind every user and cut off, so no
    per-event array is ever copied just to leave them out. `keep_time=False` leaves out the
    per-event times, which only a half-life in time units needs (8 bytes an event).
    """
    item_of_code = pd.Index(item_ids).get_indexer(events.items).astype(np.int32)
    item_index = item_of_code[events.item_codes]  # −1: not in the item table
    known = item_index >= 0
    rank, user_ids = _user_ranks(events.user_codes[known], events.users)
    user_key = rank[events.user_codes]
    user_key[~known] = len(user_ids)  # unknown events sort last
    n_known = int(np.count_nonzero(known))
    order = np.lexsort((events.order, user_key))[:n_known]  # stable: ties keep file order
    counts = np.bincount(user_key, minlength=len(user_ids) + 1)[: len(user_ids)]
    del user_key, known
    item_index = item_index[order]
    weight = None
    if weight_col:
        values = pd.to_numeric(events.extra[weight_col], errors="coerce")
        weight = values.to_numpy(dtype=np.float64, na_value=np.nan)[order]
    return History(
        user_ids=user_ids,
        counts=counts.astype(np.int64, copy=False),
        item_index=item_index,
        unknown_events=len(events) - n_known,
        unknown_items=int(np.count_nonzero((item_of_code < 0) & pd.notna(events.items))),
        users_without_known=len(events.users) - len(user_ids),
        time=events.order[order] if keep_time else None,
        weight=weight,
    )


def _user_ranks(user_codes: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per user code: its rank by id among the users in `user_codes`, else −1; their ids)."""
    present = np.flatnonzero(np.bincount(user_codes, minlength=len(names)))
    present = present[np.argsort(names[present], kind="stable")]
    rank = np.full(len(names), -1, dtype=np.int32 if len(names) < 2**31 - 1 else np.int64)
    rank[present] = np.arange(len(present))
    return rank, np.asarray(names[present], dtype=object)


def _ages(counts: np.ndarray) -> np.ndarray:
    """Per event of user-sorted blocks of `counts` events: events after it in its block."""
    dtype = np.int32 if counts.sum() < 2**31 else np.int64
    age = np.repeat((np.cumsum(counts) - 1).astype(dtype), counts)
    age -= np.arange(len(age), dtype=dtype)
    return age


@dataclass
class Seen:
    """Items to exclude per user, as CSR rows aligned with the users being ranked."""

    indptr: np.ndarray
    indices: np.ndarray
