"""The model folder `train` writes and `profile`/`rank --model` read.

    model/
      model.safetensors   the weights (loaded with safetensors only: no pickle)
      config.json         architecture, training options, the item table's model fingerprint
                          and dimension, the history fingerprint, the validation curve, version
      item_ids.json       the items that have a learned ID vector, in slot order (slot = index + 1)
      inner.safetensors   the weights that scored best on the inner leave-last split, before the
                          final epoch saw each user's latest event: what `tune --model` scores
                          that split with, so the blend weight is never chosen on seen targets

An item table is checked against config.json at use: vectors from another item model, or of
another dimension, are refused in one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from ..io.atomic import staged_folder
from ..io.fingerprint import file_sha256
from ..io.vectors import VectorTable
from .network import SequenceModel

WEIGHTS, CONFIG, ITEM_IDS = "model.safetensors", "config.json", "item_ids.json"
INNER_WEIGHTS = "inner.safetensors"


@dataclass
class TrainedModel:
    """A loaded model folder: the network (eval mode), its config and its ID vocabulary."""

    network: SequenceModel
    config: dict
    id_items: np.ndarray  # item ids with an ID vector, in slot order
    path: str
    fingerprint: str  # sha256 of model.safetensors

    @property
    def temperature(self) -> float:
        return float(self.config["training"]["temperature"])

    def slots(self, item_ids: np.ndarray) -> np.ndarray:
        """Per item id: its ID slot (≥ 1), or 0 for items without one (e.g. added later)."""
        position = pd.Index(self.id_items).get_indexer(item_ids)
        return (position + 1).astype(np.int64)

    def check_items(self, items: VectorTable, items_path: str) -> None:
        """Refuse item vectors from another model, or of another dimension, than training saw."""
        trained = self.config["items"]
        found = items.meta.get("model_fingerprint"), items.vectors.shape[1]
        if found != (trained.get("model_fingerprint"), trained["dim"]):
            raise InputError(
                f"{self.path}: trained on item vectors of model {trained.get('model')!r} "
                f"(dimension {trained['dim']}), but {items_path} holds "
                f"{items.meta.get('model')!r} (dimension {found[1]}); use an item table "
                "embedded with the same model, or train again"
            )


def save_model(
    output: str,
    network: SequenceModel,
    config: dict,
    id_items: np.ndarray,
    inner: dict[str, torch.Tensor],
) -> str:
    """Write the model folder whole or not at all; return the weights' sha256."""
    from safetensors.torch import save_file

    with staged_folder(output) as staging:
        weights = os.path.join(staging, WEIGHTS)
        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, weights)
        inner_weights = os.path.join(staging, INNER_WEIGHTS)
        save_file({k: v.cpu().contiguous() for k, v in inner.items()}, inner_weights)
        for path in (weights, inner_weights):  # safetensors makes them readable by the owner only
            os.chmod(path, 0o644)
        fingerprint = file_sha256(weights)
        Path(staging, ITEM_IDS).write_text(json.dumps([str(i) for i in id_items]), encoding="utf-8")
        Path(staging, CONFIG).write_text(
            json.dumps({**config, "weights_sha256": fingerprint}, indent=2) + "\n",
            encoding="utf-8",
        )
    return fingerprint


def load_model(path: str, *, inner: bool = False) -> TrainedModel:
    """Read a model folder written by `train` (weights through safetensors only); `inner`: the
    weights fitted without each user's latest event (for scoring the inner split)."""
    from safetensors.torch import load_file

    folder = Path(path)
    weights = INNER_WEIGHTS if inner else WEIGHTS
    missing = [name for name in (weights, CONFIG, ITEM_IDS) if not (folder / name).is_file()]
    if missing:
        raise InputError(
            f"{path}: not a model folder from 'llmrec train' (no {', '.join(missing)})"
        )
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        shape = config["architecture"]
        id_items = np.asarray(json.loads((folder / ITEM_IDS).read_text(encoding="utf-8")), object)
        network = SequenceModel(
            shape["item_dim"],
            dim=shape["dim"],
            layers=shape["layers"],
            heads=shape["heads"],
            dropout=shape["dropout"],
            max_len=shape["max_len"],
            id_slots=shape["id_slots"],
            text=shape.get("text", True),
        )
        network.load_state_dict(load_file(str(folder / weights)))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: the model folder is damaged ({exc}); train it again") from None
    network.eval()
    return TrainedModel(network, config, id_items, path, file_sha256(str(folder / weights)))
