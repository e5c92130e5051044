"""Explanations: the history item behind each recommendation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .scorers.item_to_item import ItemModel
from .topk import DEFAULT_BLOCK_BYTES

if TYPE_CHECKING:
    import scipy.sparse as sp


@dataclass
class Explainer:
    """Names, for each recommendation, the history item that contributed most to its score.

    A history item j adds w_j·cos(v_j, v_i) to the text score of item i (the profile is a
    weighted mean) and x_j·M[j, i] to an item-to-item score; each part is scaled by its largest
    contribution for that user, weighted as in the blend, and summed.
    """

    rows: sp.csr_matrix  # users × items: each user's history weights
    item_ids: np.ndarray
    text: tuple[float, np.ndarray] | None = None  # (blend weight, item vectors)
    models: list[tuple[float, ItemModel]] = field(default_factory=list)  # (blend weight, model)
    budget_bytes: int = DEFAULT_BLOCK_BYTES

    def because(self, start: int, stop: int, columns: np.ndarray) -> np.ndarray:
        """(users × k) history item ids explaining `columns`, the recommended item indices."""
        out = np.empty(columns.shape, dtype=object)
        n_items = len(self.item_ids)
        step = max(1, self.budget_bytes // (max(columns.shape[1], 1) * n_items * 4 * 3))
        for a in range(start, stop, step):
            b = min(a + step, stop)
            recs = columns[a - start : b - start]
            history = self.rows[a:b].toarray()  # (users, items) weights, 0 = not in history
            total = np.zeros((b - a, recs.shape[1], n_items), dtype=np.float32)
            if self.text is not None:
                weight, vectors = self.text
                part = (vectors[recs] @ vectors.T) * history[:, None, :]
                total += weight * _scaled(part)
            for weight, model in self.models:
                part = model.columns(recs.ravel()).reshape(recs.shape + (n_items,))
                total += weight * _scaled(part * history[:, None, :])
            total[np.broadcast_to(history[:, None, :] == 0, total.shape)] = -np.inf
            best = total.argmax(axis=2)
            names = self.item_ids[best]
            names[~np.isfinite(total.max(axis=2))] = ""
            out[a - start : b - start] = names
        return out


def _scaled(part: np.ndarray) -> np.ndarray:
    """Divide each user's contributions by their largest magnitude (so parts are comparable)."""
    peak = np.abs(part).max(axis=(1, 2), keepdims=True)
    return part / np.where(peak > 0, peak, 1)
