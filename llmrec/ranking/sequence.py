"""The `seq` blend part: a trained sequential model's user and item vectors, checked against the
item table and the user table they are used with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..data.history import History
from ..errors import InputError
from ..io.vectors import VectorTable
from ..options import RankOptions, flag

if TYPE_CHECKING:
    from ..sequential.folder import TrainedModel


@dataclass
class SeqVectors:
    """Unit user and item vectors in a model's space: their dot product is the model's score."""

    users: np.ndarray  # float32 (users, dim), rows as the users being ranked
    items: np.ndarray  # float32 (items, dim), rows as the catalog


def load_model_for(
    options: RankOptions, items: VectorTable, items_path: str
) -> TrainedModel | None:
    """The model of `options.model`, checked against the item table (None without one)."""
    if not options.model:
        return None
    from ..sequential.folder import load_model

    model = load_model(options.model)
    model.check_items(items, items_path)
    return model


def seq_users_given(
    users: VectorTable,
    model: TrainedModel,
    items: VectorTable,
    options: RankOptions,
    users_path: str,
) -> SeqVectors:
    """A user table profiled with `--model`: it must come from this model, and it has no text
    profile to blend."""
    from ..sequential.representations import item_representations

    if users.meta.get("seq_model") != model.fingerprint:
        raise InputError(
            f"{users_path}: its vectors come from another model than {options.model}; "
            f"profile the users again with {flag('model')} {options.model}"
        )
    if options.blend.get("text") or options.interests:
        raise InputError(
            f"{users_path} holds a model's user vectors, not text profiles; blend text with "
            f"{flag('history_path')} history.csv instead of {flag('users_path')}"
        )
    return SeqVectors(users.vectors, item_representations(model, items))


def seq_users_profiled(
    users: VectorTable, history: History | None, model: TrainedModel, items: VectorTable
) -> SeqVectors:
    """The model's vectors of the users being ranked, from their history (mapped on `items`)."""
    from ..sequential.representations import item_representations, user_representations

    if history is None:
        raise InputError(
            f"{flag('model')} needs the users' history of catalog items: give "
            f"{flag('history_path')} history.csv (item ids, not free text)"
        )
    rows = pd.Index(history.user_ids).get_indexer(users.ids)
    return SeqVectors(
        user_representations(model, history, items, rows), item_representations(model, items)
    )
