"""A trained model's vectors: users from their latest events, items from their text vectors (and
ID vectors where training saw them). Both are unit length, so their dot product is the cosine the
model was trained to rank by, and ranking them is ordinary vector ranking (tiles, --fast, Ray).
"""

from __future__ import annotations

import numpy as np

from ..data.history import History
from ..io.vectors import SPACE_KEY, VectorTable
from ..version import __version__
from .folder import TrainedModel
from .network import last_states, unit
from .sequences import Events, recent

USERS_PER_BLOCK = 1024


def item_representations(model: TrainedModel, items: VectorTable) -> np.ndarray:
    """(items, dim) unit float32 rows of the catalog `items`, in its row order."""
    import torch

    slots = torch.from_numpy(model.slots(items.ids))
    with torch.no_grad():
        reps = model.network.items(torch.from_numpy(items.vectors), slots)
        return unit(reps).numpy()


def user_representations(
    model: TrainedModel, history: History, items: VectorTable, users: np.ndarray | None = None
) -> np.ndarray:
    """(users, dim) unit float32 rows: the model's state after each user's latest events (at
    most max_len), a block of users at a time. `history` is mapped onto `items`; `users` (indices
    into its users) picks and orders the rows [default: all]."""
    import torch

    max_len = int(model.config["architecture"]["max_len"])
    sequences = recent(Events.of(history), max_len, users)
    slots = torch.from_numpy(model.slots(items.ids))
    out = np.empty((len(sequences), model.network.norm.normalized_shape[0]), dtype=np.float32)
    with torch.no_grad():
        table = model.network.items(torch.from_numpy(items.vectors), slots)
        for start in range(0, len(sequences), USERS_PER_BLOCK):
            block = torch.from_numpy(sequences[start : start + USERS_PER_BLOCK])
            states = model.network(block, table)
            out[start : start + len(block)] = unit(last_states(states, block)).numpy()
    return out


def user_table(model: TrainedModel, history: History, items: VectorTable) -> VectorTable:
    """The users of `history` as an ordinary vector table in the model's space."""
    meta = {
        SPACE_KEY: "seq",
        "seq_model": model.fingerprint,
        "model": items.meta.get("model", ""),
        "model_fingerprint": model.fingerprint,
        "normalized": "true",
        "version": __version__,
    }
    vectors = user_representations(model, history, items)
    return VectorTable(
        "users", history.user_ids, vectors, meta, {"n_history": history.counts.astype(np.int32)}
    )
