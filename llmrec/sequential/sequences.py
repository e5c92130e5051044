"""Histories → the padded item sequences a sequential model reads.

Items are numbered by their row in the item table plus one, so that 0 can pad. Every array is
built for all users at once from the History's per-user blocks (oldest event first), with no
loop over users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.history import History


@dataclass
class Events:
    """Per event: its user (index into the History's users), item number (row + 1) and age
    (0 = the user's most recent); per user: how many events they have."""

    user: np.ndarray
    item: np.ndarray
    age: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, history: History) -> Events:
        item = history.item_index.astype(np.int64) + 1
        return cls(history.user_index, item, history.age.astype(np.int64), history.counts)

    def without_latest(self) -> Events:
        """The same events less each user's most recent one (the inner split's history)."""
        keep = self.age > 0
        return Events(
            self.user[keep], self.item[keep], self.age[keep] - 1, np.maximum(self.counts - 1, 0)
        )

    def latest(self) -> tuple[np.ndarray, np.ndarray]:
        """(users with at least two events, their most recent item number): the inner split's
        targets, whose earlier events stay to predict them."""
        latest = self.age == 0
        users, items = self.user[latest], self.item[latest]
        keep = self.counts[users] >= 2
        return users[keep], items[keep]


def windows(events: Events, max_len: int) -> np.ndarray:
    """(windows, max_len + 1) item numbers, padded with 0 on the right: each user's events cut,
    from the most recent back, into runs of max_len + 1 (oldest first) that overlap by one event.

    A window's first max_len entries are the inputs and its last max_len the next-item targets,
    so every event but each user's oldest is a target exactly once. Window j of a user holds the
    events aged j·max_len … j·max_len + max_len; users with one event give none.
    """
    span = max_len
    count = events.counts[events.user]
    per_user = np.where(events.counts >= 2, (events.counts - 2) // span + 1, 0)
    first = np.cumsum(per_user) - per_user
    out = np.zeros((int(per_user.sum()), span + 1), dtype=np.int64)

    window = events.age // span
    own = window * span < count - 1  # the window this event is the newest part of exists
    oldest = np.minimum(window * span + span, count - 1)
    out[first[events.user[own]] + window[own], (oldest - events.age)[own]] = events.item[own]
    # An age that is a multiple of max_len is also the oldest (first) event of the next window.
    shared = (events.age % span == 0) & (events.age > 0)
    out[first[events.user[shared]] + window[shared] - 1, 0] = events.item[shared]
    return out


def recent(events: Events, max_len: int, users: np.ndarray | None = None) -> np.ndarray:
    """(users, max_len) item numbers: each user's latest max_len events, oldest first, padded with
    0 on the right; rows follow `users` (indices into the History's users; all by default)."""
    n_users = len(events.counts)
    out = np.zeros((n_users, max_len), dtype=np.int64)
    keep = events.age < max_len
    length = np.minimum(events.counts, max_len)
    position = length[events.user[keep]] - 1 - events.age[keep]
    out[events.user[keep], position] = events.item[keep]
    return out if users is None else out[users]


def lengths(sequences: np.ndarray) -> np.ndarray:
    """How many items each right-padded row of `sequences` holds."""
    return np.count_nonzero(sequences, axis=1)
