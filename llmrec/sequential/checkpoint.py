"""The checkpoint a training run keeps beside its output: one safetensors file holding the weights,
the optimizer's moments and the best weights so far, with the run's progress and a key of its
inputs and options in the file's metadata. A run whose key matches resumes from it."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from ..io.atomic import atomic_path
from .fit import Epoch, Progress
from .network import SequenceModel

FILE = "checkpoint.safetensors"


def checkpoint_folder(output: str) -> Path:
    """`.model.checkpoint/` beside the output folder `model/`."""
    target = Path(os.path.realpath(output))
    return target.parent / f".{target.name}.checkpoint"


def save_checkpoint(
    folder: Path,
    key: str,
    network: SequenceModel,
    optimizer: torch.optim.Optimizer,
    best: dict[str, torch.Tensor],
    progress: Progress,
) -> None:
    """Replace the checkpoint with the state after the last finished epoch."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in network.state_dict().items()}
    tensors |= {f"best.{k}": v.contiguous() for k, v in best.items()}
    state = optimizer.state_dict()["state"]
    for index, moments in state.items():
        for name, value in moments.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).contiguous()
    meta = {
        "key": key,
        "progress": json.dumps(
            {**asdict(progress), "epochs": [asdict(e) for e in progress.epochs]}
        ),
    }
    folder.mkdir(exist_ok=True)
    with atomic_path(str(folder / FILE)) as tmp:
        save_file(tensors, tmp, metadata=meta)


def load_checkpoint(
    folder: Path,
    key: str,
    network: SequenceModel,
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], Progress] | None:
    """Restore a checkpoint made with the same `key` into `network` and `optimizer`; return (best
    weights, progress), or None when there is none, or it belongs to other inputs or options."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = folder / FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
        if meta.get("key") != key:
            return None
        tensors = load_file(str(path))
    except (OSError, ValueError, RuntimeError):  # a damaged checkpoint: start again
        return None
    network.load_state_dict(_group(tensors, "model."))
    best = _group(tensors, "best.")
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in _group(tensors, "optimizer.").items():
        index, field = name.split(".", 1)
        moments.setdefault(int(index), {})[field] = value
    state = optimizer.state_dict()
    state["state"] = moments
    optimizer.load_state_dict(state)
    saved = json.loads(meta["progress"])
    epochs = [Epoch(**e) for e in saved.pop("epochs")]
    return best, Progress(epochs, **saved)


def remove_checkpoint(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _group(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
