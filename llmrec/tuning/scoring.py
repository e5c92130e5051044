"""One recipe's score on the inner split: every scored user ranked with the ranking stage's own
parts (profiles, text, interest, item-to-item and popularity scorers, blends, top-k with seen
items excluded), in memory, and the metric of their list against their held-out item.

What does not depend on the recipe is computed once for the whole search: which items each
user has seen, and (through `Learned`) popularity, text neighbours of items without
interactions, and every fitted cooc/EASE model (one per λ), kept while they fit a memory budget.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..data.history import Seen
from ..evaluation.metrics import FUNCTIONS
from ..io.vectors import VectorTable
from ..options import RankOptions
from ..profiles import build_profiles
from ..ranking.learned import Learned
from ..ranking.plan import blended_scorer
from ..ranking.scorers import Scorer, item_to_item
from ..ranking.scorers.item_to_item import ItemModel
from ..ranking.sequence import SeqVectors
from ..ranking.topk import DEFAULT_BLOCK_BYTES
from .inner import InnerSplit
from .space import Recipe

MODEL_BYTES = 4 * 2**30  # fitted models kept at once; beyond, the least recently used go


class InnerRanker:
    """Scores recipes on one inner split: ranks its users, measures their lists."""

    def __init__(
        self,
        split: InnerSplit,
        items: VectorTable,
        metric: str,
        k: int,
        seq: SeqVectors | None = None,
    ) -> None:
        history, n_items = split.history, len(items)
        self.split, self.items, self.k, self.seq = split, items, k, seq
        self.measure: Callable[..., np.ndarray] = FUNCTIONS[metric]
        self.seen = Seen(*history.seen(split.user_ids, n_items))
        self.models: dict[tuple[str, float], ItemModel] = {}
        self.learned = Learned(history, items, self.model)

    def values(self, recipe: Recipe) -> np.ndarray:
        """Per scored user: the metric of their top k under `recipe` against their held-out item."""
        n_users, n_items = len(self.split.user_ids), len(self.items)
        kk = min(self.k, n_items)
        hits = np.zeros((n_users, self.k), dtype=np.int8)
        targets = self.split.targets
        budget = DEFAULT_BLOCK_BYTES // max(recipe.interests, 1)
        if len(recipe.blend) > 1:
            budget //= len(recipe.blend) + 1  # a score block per part, plus the sum (as rank)
        tops = self.scorer(recipe).top_k(n_users, n_items, kk, self.seen, budget)
        for start, stop, values, columns in tops:
            found = (columns == targets[start:stop, None]) & np.isfinite(values)
            hits[start:stop, :kk] = found
        return self.measure(hits, np.ones(n_users, dtype=np.int64), self.k)

    def scorer(self, recipe: Recipe) -> Scorer:
        """The blend of `recipe` for the scored users, built by `rank`'s own `blended_scorer`."""
        options = RankOptions(
            blend=recipe.blend,
            ease_lambda=recipe.ease_lambda,
            interests=recipe.interests,
            model="inner weights" if self.seq is not None else None,
        )
        weighting = recipe.weighting()
        users = self.profiles(recipe)
        scorer, _ = blended_scorer(
            users, self.items, self.split.history, options, weighting, self.seq, self.learned
        )
        return scorer

    def profiles(self, recipe: Recipe) -> VectorTable:
        """The scored users' profiles under `recipe`'s weighting (from the inner history)."""
        users = build_profiles(self.split.history, self.items, recipe.weighting())
        rows = pd.Index(users.ids).get_indexer(self.split.user_ids)
        if (rows < 0).any():  # every user keeps their latest event, whose weight is 1
            raise RuntimeError("a scored user has no profile")
        return VectorTable("users", users.ids[rows], users.vectors[rows], users.meta)

    def model(self, kind: str, ease_lambda: float) -> ItemModel:
        """The fitted `kind` model (EASE: of λ `ease_lambda`): fitted once, then kept while the
        kept models fit MODEL_BYTES (the least recently used go first)."""
        key = (kind, ease_lambda if kind == "ease" else 0.0)
        if key in self.models:
            self.models[key] = self.models.pop(key)  # now the most recently used
            return self.models[key]
        model = item_to_item.fit(kind, self.split.history, self.items.ids, ease_lambda=ease_lambda)
        while self.models and _bytes(self.models) + _model_bytes(model) > MODEL_BYTES:
            del self.models[next(iter(self.models))]
        self.models[key] = model
        return model


def _model_bytes(model: ItemModel) -> int:
    matrix = model.matrix
    if isinstance(matrix, np.ndarray):
        return matrix.nbytes
    return matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes


def _bytes(models: dict[tuple[str, float], ItemModel]) -> int:
    return sum(_model_bytes(model) for model in models.values())
