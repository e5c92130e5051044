"""Scores from vectors: dot products of user and item vectors, or each user's best match among
several interest vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from ...data.history import History, Seen
from ...io.vectors import VectorTable
from ..ann import Approximate, ann_top_k
from ..on_ray import top_k_on_ray
from ..tiles import vector_top_k
from ..topk import pair_scores, sorted_rows
from . import Scorer, Tops

if TYPE_CHECKING:
    import torch

    from ...engine.ray import RayOptions


class WideItems:
    """The item vectors in float64, made once per scorer, for `wide_product`."""

    items: np.ndarray  # float32 (items, dim)

    @cached_property
    def wide_items(self) -> np.ndarray:
        return self.items.astype(np.float64)


@dataclass
class VectorScorer(WideItems, Scorer):
    """Dot products of user vectors with item vectors. Tiled: ranked by tiles (`vector_top_k`),
    in bfloat16 with `fast`, on Ray with `ray`; each written score is `pair_scores`'."""

    tiled: ClassVar[bool] = True
    users: np.ndarray  # float32 (users, dim)
    items: np.ndarray  # float32 (items, dim)

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        """Users [start, stop) × every item, as a blend part: see `wide_product`."""
        return wide_product(self.users[start:stop], self.wide_items)

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
        if ann is not None:
            return ann_top_k(self.users, self.items, k, seen, budget_bytes, ann)
        if ray is None:
            return vector_top_k(
                self.users,
                self.items,
                k,
                seen=seen,
                budget_bytes=budget_bytes,
                fast=fast,
                device=device,
            )
        return top_k_on_ray(
            self.users, self.items, k, seen=seen, budget_bytes=budget_bytes, fast=fast, options=ray
        )

    def written_scores(
        self, start: int, stop: int, values: np.ndarray, columns: np.ndarray, reorder: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The scores to write for users [start, stop)'s chosen items (`pair_scores`), in
        (score desc, column asc) order if `reorder`; excluded entries (−inf) stay so."""
        exact = pair_scores(self.users[start:stop], self.items, columns)
        exact[~np.isfinite(values)] = -np.inf
        return sorted_rows(exact, columns) if reorder else (exact, columns)


def vector_scorer(users: VectorTable, items: VectorTable) -> VectorScorer:
    """Dot products of a block of user vectors with every item vector (one matrix product)."""
    return VectorScorer(users.vectors, items.vectors)


@dataclass
class InterestScorer(WideItems, Scorer):
    """Each user's best match among several interest vectors: max over the user's recent items
    (rows of `interests` hold item indices, −1 where a user has fewer)."""

    interests: np.ndarray  # (users, n) item indices
    items: np.ndarray  # float32 (items, dim)

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        import torch

        index = self.interests[start:stop]
        users, n = index.shape
        rows = self.items[np.maximum(index, 0).ravel()]
        scores = wide_product(rows, self.wide_items).view(users, n, -1)  # users × interests × items
        scores[torch.from_numpy(index < 0)] = -torch.inf
        return scores.max(dim=1).values


def wide_product(users: np.ndarray, wide_items: np.ndarray) -> torch.Tensor:
    """users @ items.T (float32) through one float64 product rounded once: a float32 product's
    last bits depend on how the CPU's BLAS kernel orders its sums (AVX2 and AVX-512 differ),
    a float64 one's lie far below float32's precision, so scores that are blended or written
    from these blocks are the same bytes on any x86 CPU (but for a float64 sum within about
    1e-14 of a float32 rounding boundary)."""
    import torch

    return torch.from_numpy((users.astype(np.float64) @ wide_items.T).astype(np.float32))


def interest_scorer(interests: np.ndarray, items: VectorTable) -> InterestScorer:
    """Users scored by their best-matching recent item (see `InterestScorer`)."""
    return InterestScorer(interests, items.vectors)


def recent_items(history: History, user_ids: np.ndarray, n: int) -> np.ndarray:
    """(users × n) indices of each user's n most recent distinct items, −1 where fewer."""
    position = pd.Index(history.user_ids).get_indexer(user_ids)
    latest_first = np.lexsort((history.age, history.user_index))
    users, items = history.user_index[latest_first], history.item_index[latest_first]
    keys = users * (int(history.item_index.max()) + 1) + items
    first = ~pd.Series(keys).duplicated().to_numpy()
    users, items = users[first], items[first]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    rank = np.arange(len(users)) - np.repeat(starts, np.diff(np.r_[starts, len(users)]))
    keep = rank < n
    table = np.full((history.n_users, n), -1, dtype=np.int64)
    table[users[keep], rank[keep]] = items[keep]
    out = np.full((len(user_ids), n), -1, dtype=np.int64)
    out[position >= 0] = table[position[position >= 0]]
    return out
