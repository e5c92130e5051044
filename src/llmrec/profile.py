"""Histories → user vectors: a weighted mean of the vectors of the items each user interacted with.

Everything is computed for all users at once: events are sorted by (user, time), each event's
age (0 = most recent) comes from per-user offsets, and the weighted sums are one sparse
(users × items) @ (items × dim) product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import __version__
from .errors import InputError
from .tables import read_interactions
from .vectors import VectorTable

STRATEGIES = ("mean", "decay")


@dataclass
class History:
    """Interactions mapped onto an item table, sorted by user then time (oldest first)."""

    user_ids: np.ndarray  # distinct users with at least one known item, sorted
    user_index: np.ndarray  # per event, into user_ids
    item_index: np.ndarray  # per event, into the item table
    age: np.ndarray  # per event: 0 = the user's most recent known event
    unknown_events: int  # events whose item is not in the item table
    unknown_items: int  # distinct such items
    users_without_known: int  # users all of whose events are unknown

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def seen(self, users: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """CSR (indptr, indices) of the items each of `users` (in that order) has seen."""
        position = pd.Index(self.user_ids).get_indexer(users)
        row_of_user = np.full(self.n_users, -1, dtype=np.int64)
        known = position >= 0
        row_of_user[position[known]] = np.flatnonzero(known)
        rows = row_of_user[self.user_index]
        keep = rows >= 0
        rows, cols = rows[keep], self.item_index[keep]
        order = np.lexsort((cols, rows))
        indptr = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(users)), out=indptr[1:])
        return indptr, cols[order]


def map_history(interactions: pd.DataFrame, item_ids: np.ndarray) -> History:
    """Attach item-table rows to interactions (`user_id`, `item_id`, `order` columns)."""
    item_index = pd.Index(item_ids).get_indexer(interactions["item_id"].to_numpy(dtype=object))
    known = item_index >= 0
    all_users = interactions["user_id"].nunique()
    unknown = interactions.loc[~known, "item_id"]
    events = interactions.loc[known]
    item_index = item_index[known]
    user_codes, user_ids = pd.factorize(events["user_id"].to_numpy(dtype=object), sort=True)
    order = np.lexsort((np.arange(len(events)), events["order"].to_numpy(), user_codes))
    user_codes, item_index = user_codes[order], item_index[order]
    counts = np.bincount(user_codes, minlength=len(user_ids))
    ends = np.cumsum(counts)
    age = ends[user_codes] - 1 - np.arange(len(user_codes))
    return History(
        user_ids=np.asarray(user_ids, dtype=object),
        user_index=user_codes.astype(np.int64),
        item_index=item_index.astype(np.int64),
        age=age.astype(np.int64),
        unknown_events=int(len(unknown)),
        unknown_items=int(unknown.nunique()),
        users_without_known=int(all_users - len(user_ids)),
    )


def event_weights(age: np.ndarray, strategy: str, half_life: float | None) -> np.ndarray:
    """Weight of each event: 1 for mean; 0.5 ** (age / half_life) for decay (age in events)."""
    if strategy == "mean":
        return np.ones(len(age), dtype=np.float32)
    if strategy == "decay":
        if half_life is None or not np.isfinite(half_life) or half_life <= 0:
            raise InputError("--strategy decay needs --half-life N (events, N > 0)")
        return np.power(0.5, age / half_life).astype(np.float32)
    raise InputError(f"--strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")


def build_profiles(
    history: History,
    items: VectorTable,
    *,
    strategy: str = "mean",
    half_life: float | None = None,
    max_history: int | None = None,
    normalize: bool = True,
) -> VectorTable:
    """User vectors = Σ w·item_vector / Σ w over each user's (most recent `max_history`) events."""
    import torch

    if max_history is not None and max_history < 1:
        raise InputError(f"--max-history {max_history}: must be at least 1")
    if history.n_users == 0:
        raise InputError(
            "no user has an item that is in the item table; check that the history "
            "and the items use the same ids"
        )
    keep = history.age < max_history if max_history else np.ones(len(history.age), dtype=bool)
    users, cols, age = history.user_index[keep], history.item_index[keep], history.age[keep]
    weights = event_weights(age, strategy, half_life)
    counts = np.bincount(users, minlength=history.n_users)
    matrix = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([users, cols])),
        torch.from_numpy(weights),
        size=(history.n_users, len(items)),
        check_invariants=False,
    )
    sums = torch.sparse.mm(matrix, torch.from_numpy(items.vectors)).numpy()
    totals = np.bincount(users, weights=weights, minlength=history.n_users)
    vectors = (sums / totals[:, None]).astype(np.float32)
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
    meta = {
        key: items.meta[key]
        for key in ("model", "model_fingerprint", "pooling")
        if key in items.meta
    }
    meta.update(strategy=strategy, normalized=str(normalize).lower(), version=__version__)
    if strategy == "decay":
        meta["half_life"] = f"{half_life:g}"
    if max_history:
        meta["max_history"] = str(max_history)
    return VectorTable(
        "users", history.user_ids, vectors, meta, {"n_history": counts.astype(np.int32)}
    )


def profile_users(
    history_path: str,
    items: VectorTable,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = None,
    strategy: str = "mean",
    half_life: float | None = None,
    max_history: int | None = None,
) -> tuple[VectorTable, History]:
    """Read a history file and build one vector per user from `items`; also return the mapping."""
    event_weights(np.zeros(0), strategy, half_life)  # reject bad options before reading
    interactions = read_interactions(
        history_path, user_col=user_col, item_col=item_col, time_col=time_col
    )
    history = map_history(interactions, items.ids)
    if history.n_users == 0:
        raise InputError(
            f"{history_path}: none of its {len(interactions):,} rows names an item "
            "of the item table; check --item-col and that both use the same ids"
        )
    users = build_profiles(
        history, items, strategy=strategy, half_life=half_life, max_history=max_history
    )
    return users, history
