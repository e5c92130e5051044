"""What histories alone teach: item popularity and item-to-item models.

- `cooc`: co-occurrence of items in users' histories, cosine-normalised
  (S_ij = C_ij / √(C_ii·C_jj), C = XᵀX over binary X, diagonal zeroed). Sparse, any catalog size.
- `ease`: EASE (Steck 2019), the closed-form linear item-to-item model
  B = I − P·diag(1/diag(P)), P = (XᵀX + λI)⁻¹, diagonal zeroed. Dense item × item, so only
  for catalogs whose square fits in memory.

A user's scores are their (recency-weighted) history row times the item-to-item matrix; items
nobody interacted with may borrow the scores of their nearest items in text.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...data.history import History
from ...errors import InputError
from ...options import flag
from ..topk import DEFAULT_BLOCK_BYTES
from . import Scorer

if TYPE_CHECKING:
    import scipy.sparse as sp
    import torch


@dataclass
class ItemModelScorer(Scorer):
    """History rows (users × items, recency-weighted CSR) times an item-to-item model.

    Items no one interacted with get no score from the model; with `borrow`, they take the
    similarity-weighted mean score of their nearest items in text instead.
    """

    model: ItemModel
    rows: sp.csr_matrix
    borrow: TextNeighbours | None = None

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        import torch

        scores = self.model.scores(self.rows[start:stop])
        if self.borrow is not None:
            borrowed = scores[:, self.borrow.neighbours] * self.borrow.weights
            scores[:, self.borrow.items] = borrowed.sum(axis=2)
        return torch.from_numpy(scores)


def item_model_scorer(
    model: ItemModel, rows: sp.csr_matrix, borrow: TextNeighbours | None = None
) -> ItemModelScorer:
    """Scores of an item-to-item model for the users of `rows` (see `ItemModelScorer`)."""
    return ItemModelScorer(model, rows, borrow)


@dataclass
class TextNeighbours:
    """For items without interactions: their nearest interacted items by text, and weights."""

    items: np.ndarray  # (n,) item indices
    neighbours: np.ndarray  # (n, m) item indices
    weights: np.ndarray  # (n, m) float32, each row sums to 1

    @classmethod
    def of(cls, cold: np.ndarray, vectors: np.ndarray, m: int = 10) -> TextNeighbours | None:
        """Nearest warm items (cosine, negatives dropped) of each cold item, in chunks."""
        import torch

        cold_items, warm_items = np.flatnonzero(cold), np.flatnonzero(~cold)
        if len(cold_items) == 0 or len(warm_items) == 0:
            return None
        unit = torch.nn.functional.normalize(torch.from_numpy(vectors), dim=1)
        warm = unit[torch.from_numpy(warm_items)]
        m = min(m, len(warm_items))
        values, columns = [], []
        step = max(1, DEFAULT_BLOCK_BYTES // (4 * len(warm_items)))
        for start in range(0, len(cold_items), step):
            chunk = unit[torch.from_numpy(cold_items[start : start + step])] @ warm.T
            top = torch.topk(chunk, m, dim=1)
            values.append(top.values.clamp(min=0).numpy())
            columns.append(top.indices.numpy())
        weights = np.vstack(values)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        return cls(cold_items, warm_items[np.vstack(columns)], weights.astype(np.float32))


EASE_LAMBDA = 500.0  # the default regularisation
EASE_MAX_ITEMS = 40_000  # 40k² float32 = 6.4 GB: beyond this, use cooc


MODELS = ("cooc", "ease")


def interaction_matrix(history: History, n_items: int):
    """Binary users × items CSR matrix: 1 where the user interacted with the item."""
    import scipy.sparse as sp

    matrix = sp.csr_matrix(
        (
            np.ones(len(history.item_index), dtype=np.float32),
            (history.user_index, history.item_index),
        ),
        shape=(history.n_users, n_items),
    )
    matrix.sum_duplicates()
    matrix.data = np.minimum(matrix.data, 1.0)
    return matrix


def history_matrix(history: History, user_ids: np.ndarray, n_items: int, weights: np.ndarray):
    """Weighted history rows for `user_ids` in that order (empty rows for unknown users).

    An item seen several times keeps its largest weight (its most recent, under decay).
    """
    import scipy.sparse as sp

    rows = history.event_rows(user_ids)
    keep = (rows >= 0) & (weights != 0)
    order = np.lexsort((-weights[keep], history.item_index[keep], rows[keep]))
    r, c, w = rows[keep][order], history.item_index[keep][order], weights[keep][order]
    first = np.r_[True, (r[1:] != r[:-1]) | (c[1:] != c[:-1])] if len(r) else np.zeros(0, bool)
    return sp.csr_matrix((w[first], (r[first], c[first])), shape=(len(user_ids), n_items))


def item_popularity(history: History, n_items: int) -> np.ndarray:
    """Number of distinct users who interacted with each item."""
    pairs = np.unique(history.user_index * n_items + history.item_index)
    return np.bincount(pairs % n_items, minlength=n_items)


def cooccurrence(binary) -> sp.csr_matrix:
    """Cosine-normalised item co-occurrence S (items × items, sparse), diagonal zeroed."""
    import scipy.sparse as sp

    counts = (binary.T @ binary).tocsr().astype(np.float32)
    norms = np.sqrt(counts.diagonal())
    norms[norms == 0] = 1
    scale = sp.diags(1 / norms)
    similarity = (scale @ counts @ scale).tocsr()
    similarity.setdiag(0)
    similarity.eliminate_zeros()
    return similarity


def ease(binary, regularization: float = EASE_LAMBDA) -> np.ndarray:
    """EASE item-to-item weights B (dense float32, diagonal zero).

    P = (XᵀX + λI)⁻¹ is inverted directly when items ≤ users, else through the Woodbury
    identity P = (I − Xᵀ(λI + XXᵀ)⁻¹X) / λ, which inverts a users × users matrix instead.
    """
    n_users, n_items = binary.shape
    if n_items > EASE_MAX_ITEMS:
        raise InputError(
            f"ease needs a dense {n_items:,} × {n_items:,} matrix; "
            f"use cooc for catalogs over {EASE_MAX_ITEMS:,} items"
        )
    if regularization <= 0:
        raise InputError(f"{flag('ease_lambda')} {regularization}: must be positive")
    import torch

    # float64 throughout, rounded to float32 once: the weights are then the same bytes on
    # CPUs whose vector units sum in different orders (see blend.standardized)
    if n_items <= n_users:
        gram = torch.from_numpy((binary.T @ binary).toarray().astype(np.float64))
        gram.diagonal().add_(regularization)
        precision = torch.linalg.inv(gram)
    else:
        x = torch.from_numpy(binary.toarray().astype(np.float64))
        small = x @ x.T
        small.diagonal().add_(regularization)
        precision = -(x.T @ torch.linalg.solve(small, x))  # −Xᵀ(λI + XXᵀ)⁻¹X
        precision.diagonal().add_(1.0)
        precision /= regularization
    weights = precision.div_(-precision.diagonal().clone()).float()
    weights.diagonal().zero_()
    return weights.numpy()


@dataclass
class ItemModel:
    """A fitted item-to-item model: scores = history row @ matrix."""

    kind: str  # cooc | ease
    matrix: object  # scipy CSR (cooc) or dense ndarray (ease)
    item_ids: np.ndarray

    def columns(self, items: np.ndarray) -> np.ndarray:
        """M[:, i] for each item i, as rows (len(items) × n_items): what each history item
        contributes to i. (Co-occurrence is symmetric, so its columns are its rows.)"""
        import scipy.sparse as sp

        if sp.issparse(self.matrix):
            return np.asarray(self.matrix[items].toarray(), dtype=np.float32)
        return np.ascontiguousarray(self.matrix[:, items].T)

    def scores(self, rows) -> np.ndarray:
        """Dense (users × items) scores for a CSR block of user history rows."""
        import scipy.sparse as sp

        result = rows @ self.matrix
        return np.asarray(result.toarray() if sp.issparse(result) else result, dtype=np.float32)


def fit(
    kind: str, history: History, item_ids: np.ndarray, *, ease_lambda: float = EASE_LAMBDA
) -> ItemModel:
    """Fit `cooc` or `ease` on the binary interactions of a history."""
    binary = interaction_matrix(history, len(item_ids))
    if kind == "cooc":
        return ItemModel(kind, cooccurrence(binary), item_ids)
    if kind == "ease":
        return ItemModel(kind, ease(binary, ease_lambda), item_ids)
    raise InputError(f"unknown item-to-item model {kind!r}: choose one of {', '.join(MODELS)}")


def history_key(history: History, item_ids: np.ndarray, kind: str, ease_lambda: float) -> str:
    """A fingerprint of what a model is fitted on: the (user, item) pairs, catalog and settings."""

    digest = hashlib.sha256(f"{kind}:{ease_lambda if kind == 'ease' else ''}".encode())
    pairs = np.unique(history.user_index * len(item_ids) + history.item_index)
    digest.update(pairs.tobytes())
    digest.update("\x1f".join(history.user_ids.astype(str)).encode())
    digest.update("\x1f".join(item_ids.astype(str)).encode())
    return digest.hexdigest()[:20]


def fit_cached(
    kind: str,
    history: History,
    item_ids: np.ndarray,
    *,
    ease_lambda: float = EASE_LAMBDA,
    cache_dir: str | None = None,
) -> ItemModel:
    """Fit a model, or load it from `cache_dir` when the same history was fitted before."""
    import scipy.sparse as sp

    if not cache_dir:
        return fit(kind, history, item_ids, ease_lambda=ease_lambda)

    from ...io.atomic import atomic_path

    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(
        cache_dir, f"{kind}-{history_key(history, item_ids, kind, ease_lambda)}.npz"
    )
    if os.path.isfile(path):
        try:
            if kind == "cooc":
                return ItemModel(kind, sp.load_npz(path).tocsr(), item_ids)
            with np.load(path) as stored:
                return ItemModel(kind, stored["weights"], item_ids)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is simply fitted again
    model = fit(kind, history, item_ids, ease_lambda=ease_lambda)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        if kind == "cooc":
            sp.save_npz(handle, model.matrix, compressed=False)
        else:
            np.savez(handle, weights=model.matrix)
    return model
