"""The inner leave-last split: each user's most recent event is held out of the history.

Users with a single event stay in the history (their events still teach co-occurrence, EASE
and popularity) but are not scored. Ties in time fall back to file order, as in `split`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.history import History, map_encoded
from ..data.interactions import read_encoded_interactions
from ..errors import InputError
from ..options import HistoryColumns, flag


@dataclass
class InnerSplit:
    """The inner history, and the users scored against their held-out latest item."""

    history: History  # every event but the held-out ones
    user_ids: np.ndarray  # the scored users (at least 2 events), sorted
    targets: np.ndarray  # per scored user: the item-table row of their latest event


def inner_split(history: History) -> InnerSplit:
    """Hold out the latest event (age 0) of every user with at least 2 events."""
    scored = history.counts >= 2
    held_out = (history.age == 0) & np.repeat(scored, history.counts)
    keep = ~held_out
    inner = History(
        user_ids=history.user_ids,
        counts=history.counts - scored,
        item_index=history.item_index[keep],
        unknown_events=history.unknown_events,
        unknown_items=history.unknown_items,
        users_without_known=history.users_without_known,
        time=None if history.time is None else history.time[keep],
        weight=None if history.weight is None else history.weight[keep],
    )
    return InnerSplit(inner, history.user_ids[scored], history.item_index[held_out])


@dataclass
class TuningHistory:
    """A history file mapped onto the item table, and what it says about itself."""

    history: History
    rows: int  # rows in the file
    timed: bool  # the order comes from a time column, not from file positions


def read_history(path: str, item_ids: np.ndarray, columns: HistoryColumns) -> TuningHistory:
    """Read a history file of item ids and map it onto `item_ids` (times kept)."""
    if columns.text_col:
        raise InputError(
            f"{flag('text_col')}: tuning needs histories of item ids (its parts learn from items)"
        )
    events = read_encoded_interactions(
        path, user_col=columns.user_col, item_col=columns.item_col, time_col=columns.time_col
    )
    rows = len(events)
    timed = not np.array_equal(events.order, np.arange(rows, dtype=np.float64))
    history = map_encoded(events, item_ids)
    if history.n_users == 0:
        raise InputError(
            f"{path}: none of its {rows:,} rows names an item of the item table; "
            f"check {flag('item_col')} and that both use the same ids"
        )
    if not (history.counts >= 2).any():
        raise InputError(
            f"{path}: no user has 2 or more events with items in the item table; tuning holds "
            "out each user's latest event and needs the rest to rank from"
        )
    return TuningHistory(history, rows, timed)
