"""Maximal marginal relevance: re-rank each user's candidates for diversity."""

from __future__ import annotations

import numpy as np


def diversify(
    values: np.ndarray, columns: np.ndarray, vectors: np.ndarray, k: int, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidates by maximal marginal relevance, for a block of users at once.

    Greedily picks argmax (1 − λ)·rel − λ·max_{s∈picked} cos(item, s), where rel is each
    user's candidate score rescaled to [0, 1] and λ = `strength` (0 keeps the order).
    Takes and returns numpy arrays: the picked (values, columns), k per user, in pick order.
    """
    import torch

    values, columns = torch.from_numpy(values), torch.from_numpy(columns)
    valid = torch.isfinite(values)
    low = values.where(valid, torch.inf).min(dim=1, keepdim=True).values
    high = values.where(valid, -torch.inf).max(dim=1, keepdim=True).values
    relevance = (values - low) / (high - low).clamp(min=1e-12)
    unit = torch.nn.functional.normalize(torch.from_numpy(vectors), dim=1)
    candidates = unit[columns]  # users × m × dim
    similarity = candidates @ candidates.transpose(1, 2)
    closest = torch.zeros_like(relevance)  # max similarity to what is already picked
    available = valid.clone()
    rows = torch.arange(values.shape[0])
    picks, found = [], []
    for _ in range(min(k, values.shape[1])):
        gain = ((1 - strength) * relevance - strength * closest).masked_fill(~available, -torch.inf)
        found.append(available.any(dim=1))  # users with no candidate left get an empty slot
        pick = gain.argmax(dim=1)
        picks.append(pick)
        available[rows, pick] = False
        closest = torch.maximum(closest, similarity[rows, pick])
    order = torch.stack(picks, dim=1)
    picked = values.gather(1, order).masked_fill(~torch.stack(found, dim=1), -torch.inf)
    return picked.numpy(), columns.gather(1, order).numpy()
