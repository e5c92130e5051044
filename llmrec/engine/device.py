"""Torch devices: `auto` resolved to the best one here, an explicit one checked to exist, and
how much of a GPU's memory a stage may take for its blocks."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from ..errors import ModelError
from ..options import Device, flag

if TYPE_CHECKING:
    import torch


def pick_device(device: Device) -> Device:
    """Resolve `auto` to the best available torch device; check an explicit one exists."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            f"{flag('device')} cuda: no CUDA GPU is available here; use {flag('device')} cpu"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelError(
            f"{flag('device')} mps: Apple MPS is not available here; use {flag('device')} cpu"
        )
    return device


def may_have_cuda() -> bool:
    """False where no CUDA GPU can be present, known without importing torch (seconds of start-
    up): on Linux every NVIDIA GPU shows up as /dev/nvidiactl. Elsewhere, True: ask torch."""
    return not sys.platform.startswith("linux") or os.path.exists("/dev/nvidiactl")


def free_bytes(device: torch.device) -> int | None:
    """Free memory on a CUDA device; None for the CPU (whose blocks follow the caller's budget)."""
    import torch

    if device.type != "cuda":
        return None
    return torch.cuda.mem_get_info(device)[0]
