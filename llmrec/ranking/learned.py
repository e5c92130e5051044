"""What scoring learns from a history: item popularity, the text neighbours lent to items without
interactions, and fitted item-to-item models. Each is computed on first use and kept, so the
parts of a blend, or the trials of `tune`, share them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..data.history import History
from ..io.vectors import VectorTable
from .scorers import item_to_item
from .scorers.item_to_item import ItemModel, TextNeighbours

FitModel = Callable[[str, float], ItemModel]  # (cooc | ease, EASE's λ) → the fitted model


@dataclass
class Learned:
    """A history's learned parts over a catalog; `fit_model` fits (or loads) cooc and EASE."""

    history: History
    items: VectorTable
    fit_model: FitModel

    @classmethod
    def of(cls, history: History, items: VectorTable, cache_dir: str | None = None) -> Learned:
        """Models fitted as `rank` fits them: kept in `cache_dir` when one is given."""

        def fit_model(kind: str, ease_lambda: float) -> ItemModel:
            return item_to_item.fit_cached(
                kind, history, items.ids, ease_lambda=ease_lambda, cache_dir=cache_dir
            )

        return cls(history, items, fit_model)

    @cached_property
    def popularity(self) -> np.ndarray:
        """log(1 + interactions) per catalog item."""
        return np.log1p(item_to_item.item_popularity(self.history, len(self.items)))

    @cached_property
    def borrow(self) -> TextNeighbours | None:
        """The nearest items with interactions, by text, of each item without any."""
        cold = np.bincount(self.history.item_index, minlength=len(self.items)) == 0
        return TextNeighbours.of(cold, self.items.vectors)

    def model(self, kind: str, ease_lambda: float) -> ItemModel:
        return self.fit_model(kind, ease_lambda)
