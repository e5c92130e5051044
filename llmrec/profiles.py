"""Histories → user vectors: a weighted mean of the vectors of the items each user interacted with.

Everything is computed for all users at once: ids are dictionary-encoded (an int32 code per
row), events are sorted by (user, time), each event's age (0 = most recent) comes from per-user
offsets, and the weighted sums are one sparse CSR (users × items) @ (items × dim) product,
taken a block of users at a time so that no temporary is as large as the output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .data.history import History, map_encoded
from .data.interactions import read_encoded_interactions
from .errors import InputError
from .io.vectors import VectorTable, read_vectors, write_vectors
from .options import HistoryColumns, Weighting, flag
from .version import __version__

BLOCK_VALUES = 1 << 22  # user rows × dim pooled per block: 16 MB of float32 temporaries


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
    weighting = weighting or Weighting()
    if history.n_users == 0:
        raise InputError(
            "no user has an item that is in the item table; check that the history "
            "and the items use the same ids"
        )
    weights = weighting.weights(history)
    totals = history.user_sums(np.abs(weights))
    rows = weighted_events(history, weights)
    del weights
    counts = np.diff(rows[0])
    keep = totals > 0
    vectors = pooled_vectors(rows, items.vectors, totals, normalize=normalize)
    if not keep.all():
        vectors = vectors[keep]
    meta = {
        key: items.meta[key]
        for key in ("model", "model_fingerprint", "pooling")
        if key in items.meta
    }
    meta.update(weighting.metadata(), normalized=str(normalize).lower(), version=__version__)
    return VectorTable(
        "users", history.user_ids[keep], vectors, meta, {"n_history": counts[keep].astype(np.int32)}
    )


def pooled_vectors(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    item_vectors: np.ndarray,
    totals: np.ndarray,
    *,
    normalize: bool = True,
) -> np.ndarray:
    """Per CSR row (user): Σ w·item_vector / total (float32), unit length if `normalize`.

    The product is taken a block of users at a time, straight into the output, so that the
    only temporaries are a block's worth; rows whose total is 0 come out as zeros. Weights
    (CSR values) of None mean 1 each.
    """
    import scipy.sparse as sp

    indptr, columns, values = rows
    n_users = len(indptr) - 1
    dense = np.ascontiguousarray(item_vectors, dtype=np.float32)
    out = np.empty((n_users, dense.shape[1]), dtype=np.float32)
    scale = np.where(totals > 0, totals, 1.0)
    step = max(1, BLOCK_VALUES // max(1, dense.shape[1]))
    for start in range(0, n_users, step):
        stop = min(start + step, n_users)
        first, last = indptr[start], indptr[stop]
        weights = np.ones(last - first, np.float32) if values is None else values[first:last]
        block = sp.csr_matrix(
            (weights, columns[first:last], indptr[start : stop + 1] - first),
            shape=(stop - start, len(dense)),
        )
        sums = block @ dense
        sums /= scale[start:stop, None]  # computed in float64, stored as float32
        if normalize:
            sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        out[start:stop] = sums
    return out


def weighted_events(
    history: History, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """CSR (indptr, item columns, weights) of each user's events with a non-zero weight.

    Weights that are all 1 (mean, last) come back as None: 4 bytes an event not held.
    """
    used = weights != 0
    counts, columns, values = history.counts, history.item_index, weights
    if not used.all():
        counts = np.add.reduceat(used, history.starts, dtype=np.int64)
        columns, values = columns[used], values[used]
    indptr = np.zeros(history.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    unit = bool(np.all(values == 1))
    return indptr, columns, None if unit else values.astype(np.float32, copy=False)


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
    events = read_encoded_interactions(
        history_path, user_col=user_col, item_col=item_col, time_col=time_col, extra=extra
    )
    rows = len(events)
    history = map_encoded(events, items.ids, weighting.weight_col, keep_time=weighting.needs_time)
    del events  # the encoded rows are no longer needed: free them before the product
    if history.n_users == 0:
        raise InputError(
            f"{history_path}: none of its {rows:,} rows names an item "
            f"of the item table; check {flag('item_col')} and that both use the same ids"
        )
    return build_profiles(history, items, weighting), history


def text_encoder_for(items: VectorTable, items_path: str = "the item table"):
    """Load the model that made `items` (checked by fingerprint), to embed free text the same way."""
    from .embedding.encoder import Encoder

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
    events = read_encoded_interactions(
        history_path,
        user_col=user_col,
        item_col=text_col,
        time_col=time_col,
        extra=[weighting.weight_col] if weighting.weight_col else [],
    )
    texts = events.items  # each distinct text once, in order of first appearance
    encoder = text_encoder_for(items)
    normalize = items.meta.get("normalized", "true") == "true"
    vectors = encoder.encode(texts, batch_size=batch_size, normalize=normalize)
    text_table = VectorTable("items", texts, vectors, dict(items.meta))
    history = map_encoded(events, texts, weighting.weight_col)
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


@dataclass
class ProfileRun:
    """What `profile_to_file` wrote: the user table, and how the history mapped onto the items."""

    users: VectorTable
    history: History
    from_text: bool  # the history named free text, embedded with the items' model


def profile_to_file(
    history_path: str,
    items_path: str,
    output: str | None,
    *,
    columns: HistoryColumns | None = None,
    weighting: Weighting | None = None,
    model: str | None = None,
    on_step: Callable[[], None] | None = None,
) -> ProfileRun:
    """`llmrec profile`: read the item table and the history, write one vector per user (with
    `model`, a folder from `train`: the model's user vectors, for `rank --model`). With
    `output` None nothing is written: the user table is `ProfileRun.users`."""
    columns = columns or HistoryColumns()
    items = read_vectors(items_path, "items")
    if on_step:
        on_step()
    if model:
        users, history = model_profiles(history_path, items, items_path, model, columns, weighting)
    else:
        users, history = profile_history(
            history_path,
            items,
            text_col=columns.text_col,
            user_col=columns.user_col,
            item_col=columns.item_col,
            time_col=columns.time_col,
            weighting=weighting,
        )
    if on_step:
        on_step()
    if output is not None:
        write_vectors(users, output)
    return ProfileRun(users, history, columns.text_col is not None)


def model_profiles(
    history_path: str,
    items: VectorTable,
    items_path: str,
    model_path: str,
    columns: HistoryColumns,
    weighting: Weighting | None,
) -> tuple[VectorTable, History]:
    """Users as a trained model sees them: its state after each user's latest events."""
    from .sequential.folder import load_model
    from .sequential.representations import user_table
    from .sequential.training import read_history

    if columns.text_col or (weighting and weighting != Weighting()):
        raise InputError(
            f"{flag('model')} reads each user's latest items itself: leave out "
            f"{flag('text_col')} and the weighting options ({flag('strategy')}, "
            f"{flag('half_life')}, …)"
        )
    model = load_model(model_path)
    model.check_items(items, items_path)
    history = read_history(history_path, items, columns)
    return user_table(model, history, items), history
