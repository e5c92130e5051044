"""Baselines that need no embeddings: popularity and seeded random scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import Scorer

if TYPE_CHECKING:
    import torch


@dataclass
class PopularityScorer(Scorer):
    """The same score for every user: how many users interacted with each item."""

    counts: np.ndarray  # per item

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        import torch

        row = torch.from_numpy(self.counts.astype(np.float32))
        return row.expand(stop - start, -1).clone()


@dataclass
class RandomScorer(Scorer):
    """Uniform random scores that depend only on (seed, user row, item), not on blocking."""

    n_items: int
    seed: int = 0

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        import torch

        items = np.arange(self.n_items, dtype=np.uint64)
        offset = _splitmix64(np.array([self.seed], dtype=np.uint64))[0]
        users = np.arange(start, stop, dtype=np.uint64)[:, None]
        with np.errstate(over="ignore"):
            keys = users * np.uint64(self.n_items) + items + offset
        return torch.from_numpy((_splitmix64(keys) >> np.uint64(40)).astype(np.float32))


def popularity_scorer(counts: np.ndarray) -> PopularityScorer:
    """Items scored by how many users interacted with them, the same for every user."""
    return PopularityScorer(counts)


def random_scorer(n_items: int, seed: int = 0) -> RandomScorer:
    """Seeded uniform random scores (see `RandomScorer`)."""
    return RandomScorer(n_items, seed)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fast, well-mixed 64-bit integer hash (SplitMix64's finaliser), vectorised."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
