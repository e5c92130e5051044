"""Baselines that need no embeddings: popularity and seeded random scores."""

from __future__ import annotations

import numpy as np

from . import Scorer


def popularity_scorer(counts: np.ndarray) -> Scorer:
    """The same score for every user: how many users interacted with each item."""
    import torch

    row = torch.from_numpy(counts.astype(np.float32))
    return lambda start, stop: row.expand(stop - start, -1).clone()


def random_scorer(n_items: int, seed: int = 0) -> Scorer:
    """Uniform random scores that depend only on (seed, user row, item), not on blocking."""
    import torch

    items = np.arange(n_items, dtype=np.uint64)
    offset = _splitmix64(np.array([seed], dtype=np.uint64))[0]

    def score(start: int, stop: int):
        users = np.arange(start, stop, dtype=np.uint64)[:, None]
        with np.errstate(over="ignore"):
            keys = users * np.uint64(n_items) + items + offset
        return torch.from_numpy((_splitmix64(keys) >> np.uint64(40)).astype(np.float32))

    return score


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fast, well-mixed 64-bit integer hash (SplitMix64's finaliser), vectorised."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


BASELINES = ("popular", "random")
