"""Scorers: what gives each (user, item) its score."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


Scorer = Callable[[int, int], "torch.Tensor"]  # users [start, stop) → (stop − start, items)
