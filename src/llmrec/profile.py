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

STRATEGIES = ("mean", "decay", "last", "weighted")
WEIGHT_MODES = ("auto", "centered", "log", "raw")
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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
    time: np.ndarray | None = None  # per event: its order key (unix seconds for dates)
    weight: np.ndarray | None = None  # per event: the raw weight column, if one was read

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def seconds_old(self) -> np.ndarray:
        """Per event: time since the user's most recent event, in the time column's unit."""
        latest = np.full(self.n_users, -np.inf)
        np.maximum.at(latest, self.user_index, self.time)
        return latest[self.user_index] - self.time

    def event_rows(self, users: np.ndarray) -> np.ndarray:
        """Per event: the row of its user in `users` (−1 where the user is not listed)."""
        position = pd.Index(self.user_ids).get_indexer(users)
        row_of_user = np.full(self.n_users, -1, dtype=np.int64)
        known = position >= 0
        row_of_user[position[known]] = np.flatnonzero(known)
        return row_of_user[self.user_index]

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
    item_index = pd.Index(item_ids).get_indexer(interactions["item_id"].to_numpy(dtype=object))
    known = item_index >= 0
    all_users = interactions["user_id"].nunique()
    unknown = interactions.loc[~known, "item_id"]
    events = interactions.loc[known]
    item_index = item_index[known]
    user_codes, user_ids = pd.factorize(events["user_id"].to_numpy(dtype=object), sort=True)
    times = events["order"].to_numpy(dtype=np.float64)
    order = np.lexsort((np.arange(len(events)), times, user_codes))
    user_codes, item_index = user_codes[order], item_index[order]
    counts = np.bincount(user_codes, minlength=len(user_ids))
    ends = np.cumsum(counts)
    age = ends[user_codes] - 1 - np.arange(len(user_codes))
    weight = None
    if weight_col:
        values = pd.to_numeric(events[weight_col], errors="coerce")
        weight = values.to_numpy(dtype=np.float64, na_value=np.nan)[order]
    return History(
        user_ids=np.asarray(user_ids, dtype=object),
        user_index=user_codes.astype(np.int64),
        item_index=item_index.astype(np.int64),
        age=age.astype(np.int64),
        unknown_events=int(len(unknown)),
        unknown_items=int(unknown.nunique()),
        users_without_known=int(all_users - len(user_ids)),
        time=times[order],
        weight=weight,
    )


def parse_half_life(value: str | float | None) -> tuple[float, str] | None:
    """`5` → (5, "events"); `30d`, `12h`, `2w`, `90m`, `45s` → (seconds, "seconds")."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    unit = "events"
    scale = 1.0
    if text and text[-1] in _TIME_UNITS:
        unit, scale, text = "seconds", _TIME_UNITS[text[-1]], text[:-1]
    try:
        amount = float(text) * scale
    except ValueError:
        amount = float("nan")
    if not np.isfinite(amount) or amount <= 0:
        raise InputError(
            f"--half-life {value!r}: give a positive number of events (e.g. 5) "
            "or a time such as 30d, 12h, 2w"
        )
    return amount, unit


@dataclass(frozen=True)
class Weighting:
    """How a user's events are weighted into their profile.

    mean: 1 each; decay: recency decay only; last: the last `last_n` events; weighted: from a
    weight column (ratings centred per user so disliked items push away, quantities
    log-scaled). A half-life (events or time) multiplies any of them by 0.5^(age/half-life).
    """

    strategy: str = "mean"
    half_life: str | float | None = None
    last_n: int | None = None
    max_history: int | None = None
    weight_col: str | None = None
    weight_mode: str = "auto"

    def check(self) -> None:
        """Reject inconsistent options before any file is read."""
        if self.strategy not in STRATEGIES:
            raise InputError(f"--strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        decay = parse_half_life(self.half_life)
        if self.strategy == "decay" and decay is None:
            raise InputError(
                "--strategy decay needs --half-life (events, e.g. 5, or a time, e.g. 30d)"
            )
        if self.strategy == "last" and (self.last_n is None or self.last_n < 1):
            raise InputError("--strategy last needs --last-n N (N ≥ 1)")
        if self.strategy == "weighted" and not self.weight_col:
            raise InputError("--strategy weighted needs --weight-col (e.g. rating or quantity)")
        if self.weight_mode not in WEIGHT_MODES:
            raise InputError(
                f"--weight-mode {self.weight_mode!r}: choose one of {', '.join(WEIGHT_MODES)}"
            )
        if self.max_history is not None and self.max_history < 1:
            raise InputError(f"--max-history {self.max_history}: must be at least 1")

    def weights(self, history: History) -> np.ndarray:
        """Per-event weights (float32); 0 leaves an event out."""
        self.check()
        weights = np.ones(len(history.age), dtype=np.float64)
        if self.strategy == "last":
            weights *= history.age < self.last_n
        if self.strategy == "weighted":
            weights *= self._column_weights(history)
        decay = parse_half_life(self.half_life)
        if decay:
            amount, unit = decay
            age = history.age if unit == "events" else history.seconds_old()
            weights *= np.power(0.5, age / amount)
        if self.max_history:
            weights *= history.age < self.max_history
        return weights.astype(np.float32)

    def _column_weights(self, history: History) -> np.ndarray:
        values = history.weight
        if values is None:
            raise InputError(f"--weight-col {self.weight_col!r}: the column was not read")
        if np.isnan(values).any():
            raise InputError(f"--weight-col {self.weight_col!r} has empty or non-numeric values")
        mode = self.weight_mode
        if mode == "auto":
            mode = (
                "centered"
                if "rat" in self.weight_col.lower() or "star" in self.weight_col.lower()
                else "log"
            )
        if mode == "centered":
            sums = np.bincount(history.user_index, weights=values, minlength=history.n_users)
            counts = np.bincount(history.user_index, minlength=history.n_users)
            return values - (sums / np.maximum(counts, 1))[history.user_index]
        if mode == "log":
            return np.log1p(np.maximum(values, 0))
        return values

    def metadata(self) -> dict[str, str]:
        meta = {"strategy": self.strategy}
        for key in ("half_life", "last_n", "max_history", "weight_col"):
            value = getattr(self, key)
            if value not in (None, ""):
                meta[key] = str(value)
        if self.weight_col:
            meta["weight_mode"] = self.weight_mode
        return meta


def build_profiles(
    history: History,
    items: VectorTable,
    weighting: Weighting | None = None,
    *,
    normalize: bool = True,
) -> VectorTable:
    """User vectors = Σ w·item_vector / Σ |w| over each user's weighted events.

    Negative weights (disliked items) push a profile away from those items. Users all of whose
    events weigh 0 are left out.
    """
    import torch

    weighting = weighting or Weighting()
    if history.n_users == 0:
        raise InputError(
            "no user has an item that is in the item table; check that the history "
            "and the items use the same ids"
        )
    weights = weighting.weights(history)
    used = weights != 0
    users, cols, weights = history.user_index[used], history.item_index[used], weights[used]
    matrix = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([users, cols])),
        torch.from_numpy(weights),
        size=(history.n_users, len(items)),
        check_invariants=False,
    )
    sums = torch.sparse.mm(matrix, torch.from_numpy(items.vectors)).numpy()
    totals = np.bincount(users, weights=np.abs(weights), minlength=history.n_users)
    counts = np.bincount(users, minlength=history.n_users)
    keep = totals > 0
    vectors = (sums[keep] / totals[keep, None]).astype(np.float32)
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
    meta = {
        key: items.meta[key]
        for key in ("model", "model_fingerprint", "pooling")
        if key in items.meta
    }
    meta.update(weighting.metadata(), normalized=str(normalize).lower(), version=__version__)
    return VectorTable(
        "users", history.user_ids[keep], vectors, meta, {"n_history": counts[keep].astype(np.int32)}
    )


def profile_users(
    history_path: str,
    items: VectorTable,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = None,
    weighting: Weighting | None = None,
) -> tuple[VectorTable, History]:
    """Read a history file and build one vector per user from `items`; also return the mapping."""
    weighting = weighting or Weighting()
    weighting.check()  # reject bad options before reading
    extra = [weighting.weight_col] if weighting.weight_col else []
    interactions = read_interactions(
        history_path, user_col=user_col, item_col=item_col, time_col=time_col, extra=extra
    )
    history = map_history(interactions, items.ids, weighting.weight_col)
    if history.n_users == 0:
        raise InputError(
            f"{history_path}: none of its {len(interactions):,} rows names an item "
            "of the item table; check --item-col and that both use the same ids"
        )
    return build_profiles(history, items, weighting), history


def text_encoder_for(items: VectorTable, items_path: str = "the item table"):
    """Load the model that made `items` (checked by fingerprint), to embed free text the same way."""
    from .encoder import Encoder

    encoder = Encoder.load(
        items.meta.get("model"),
        pooling=items.meta.get("pooling"),
        max_length=int(items.meta.get("max_length", "256")),
    )
    if encoder.fingerprint != items.meta.get("model_fingerprint"):
        raise InputError(
            f"{items_path}: its vectors come from other weights than model "
            f"{encoder.name!r} has now; embed the items again"
        )
    return encoder


def profile_texts(
    history_path: str,
    items: VectorTable,
    text_col: str,
    *,
    user_col: str = "user_id",
    time_col: str | None = None,
    weighting: Weighting | None = None,
    batch_size: int = 64,
) -> tuple[VectorTable, History]:
    """Users from free-text histories (e.g. "Apple iPhone 12"): each distinct text is embedded
    with the items' model, then pooled per user exactly as item vectors are."""
    weighting = weighting or Weighting()
    weighting.check()
    interactions = read_interactions(
        history_path,
        user_col=user_col,
        item_col=text_col,
        time_col=time_col,
        extra=[weighting.weight_col] if weighting.weight_col else [],
    )
    texts = np.asarray(pd.unique(interactions["item_id"].to_numpy(dtype=object)), dtype=object)
    encoder = text_encoder_for(items)
    normalize = items.meta.get("normalized", "true") == "true"
    vectors = encoder.encode(texts, batch_size=batch_size, normalize=normalize)
    text_table = VectorTable("items", texts, vectors, dict(items.meta))
    history = map_history(interactions, texts, weighting.weight_col)
    return build_profiles(history, text_table, weighting), history


def profile_history(
    history_path: str,
    items: VectorTable,
    *,
    text_col: str | None = None,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = None,
    weighting: Weighting | None = None,
) -> tuple[VectorTable, History]:
    """Users from a history of item ids, or of free text when `text_col` names its column.

    The returned History maps onto `items` only for item-id histories; for free text it maps
    onto the distinct texts (so it names no catalog item).
    """
    if text_col:
        return profile_texts(
            history_path, items, text_col, user_col=user_col, time_col=time_col, weighting=weighting
        )
    return profile_users(
        history_path,
        items,
        user_col=user_col,
        item_col=item_col,
        time_col=time_col,
        weighting=weighting,
    )
