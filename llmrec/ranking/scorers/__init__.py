"""Scorers: what gives a block of users a score for every item.

Every scorer is called with a range of user rows and returns their (users × items) scores.
What a kind of scorer supports beyond that, it declares: a `tiled` scorer (plain dot products
of user and item vectors) is ranked tile by tile instead of a whole score block at a time,
which is what makes `--fast` (bfloat16 tiles), `--device cuda` (tiles on a GPU), `--index`
(a faiss index instead of tiles) and `--engine ray` (user blocks as Ray tasks) possible; it also gives the score written for each chosen item.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ...data.history import Seen
from ..tiles import scored_top_k

if TYPE_CHECKING:
    import torch

    from ...engine.ray import RayOptions
    from ..ann import Approximate

# (start, stop, values, columns): float32 and int64 numpy arrays of (stop − start) × k
Tops = Iterator[tuple[int, int, np.ndarray, np.ndarray]]


class Scorer(ABC):
    """Scores for users [start, stop) against every item: a (stop − start, items) tensor."""

    tiled: ClassVar[bool] = False  # ranked by tiles: --fast, --device, --index, --engine ray

    @abstractmethod
    def __call__(self, start: int, stop: int) -> torch.Tensor: ...

    def top_k(
        self,
        n_users: int,
        n_items: int,
        k: int,
        seen: Seen | None,
        budget_bytes: int,
        *,
        fast: bool = False,
        ray: RayOptions | None = None,
        device: str = "cpu",
        ann: Approximate | None = None,
    ) -> Tops:
        """Yield (start, stop, values, columns): each block of users' top k, ordered by (score
        desc, column asc), seen items excluded (−inf). Untiled scorers score whole blocks, on
        the CPU; tiled ones score tiles on `device`, or ask a faiss index (`ann`)."""
        return scored_top_k(self, n_users, n_items, k, seen, budget_bytes)

    def written_scores(
        self, start: int, stop: int, values: np.ndarray, columns: np.ndarray, reorder: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The scores to write for the chosen items of users [start, stop): as chosen."""
        return values, columns
