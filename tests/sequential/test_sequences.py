"""Histories → the sequences the model reads: the vectorised windows and latest events equal a
plain per-user construction on random histories, and the inner split holds out each user's
latest event."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.history import map_history
from llmrec.sequential.sequences import Events, recent, windows


def random_history(seed: int, users: int = 40, items: int = 30):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 25, size=users)
    frame = pd.DataFrame(
        {
            "user_id": np.repeat([f"u{i:03d}" for i in range(users)], counts),
            "item_id": [f"i{j:03d}" for j in rng.integers(0, items, size=counts.sum())],
            "order": rng.permutation(int(counts.sum())).astype(np.float64),
        }
    )
    return map_history(frame, np.array([f"i{j:03d}" for j in range(items)], dtype=object))


def per_user(history) -> list[list[int]]:
    """Each user's item numbers (row + 1), oldest first, the slow obvious way."""
    starts = np.cumsum(history.counts) - history.counts
    return [
        list(history.item_index[s : s + c] + 1) for s, c in zip(starts, history.counts, strict=True)
    ]


def expected_windows(sequences: list[list[int]], max_len: int) -> list[list[int]]:
    rows = []
    for items in sequences:
        end = len(items)
        while end >= 2:  # the newest max_len + 1 events, then the run before, sharing one event
            run = items[max(0, end - max_len - 1) : end]
            rows.append(run + [0] * (max_len + 1 - len(run)))
            end -= max_len
    return rows


@pytest.mark.parametrize("seed, max_len", [(0, 5), (1, 3), (2, 1), (3, 50)])
def test_windows_equal_a_per_user_construction(seed, max_len):
    history = random_history(seed)
    found = windows(Events.of(history), max_len)
    expected = expected_windows(per_user(history), max_len)
    assert sorted(map(tuple, found.tolist())) == sorted(map(tuple, expected))
    # every event but each user's oldest is a target exactly once
    assert np.count_nonzero(found[:, 1:]) == int((history.counts - 1).sum())


@pytest.mark.parametrize("max_len", [1, 4, 30])
def test_recent_holds_each_users_latest_events_oldest_first(max_len):
    history = random_history(4)
    found = recent(Events.of(history), max_len)
    for row, items in zip(found.tolist(), per_user(history), strict=True):
        latest = items[-max_len:]
        assert row == latest + [0] * (max_len - len(latest))


def test_inner_split_holds_out_each_users_latest_event():
    history = random_history(5)
    events = Events.of(history)
    users, targets = events.latest()
    sequences = per_user(history)
    assert users.tolist() == [u for u, items in enumerate(sequences) if len(items) >= 2]
    assert targets.tolist() == [sequences[u][-1] for u in users]
    inputs = recent(events.without_latest(), 6, users)
    for row, user in zip(inputs.tolist(), users, strict=True):
        before = sequences[user][:-1][-6:]
        assert row == before + [0] * (6 - len(before))
