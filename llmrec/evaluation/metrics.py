"""Ranking metrics as pure functions over a hit matrix.

Every function takes `hits`, a (users × K) 0/1 matrix where hits[u, i] says whether the item
at rank i+1 of user u's list is relevant (lists shorter than K are padded with 0), and
`n_relevant`, the size of each user's relevant set |R| (> 0). It returns one value per user.
Binary relevance; conventions match ranx and current trec_eval.
"""

from __future__ import annotations

import numpy as np

METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")
DISPLAY_NAMES = {
    "precision": "Precision",
    "recall": "Recall",
    "ndcg": "NDCG",
    "map": "MAP",
    "mrr": "MRR",
    "hit_rate": "HitRate",
}


def _top(hits: np.ndarray, k: int) -> np.ndarray:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return hits[:, :k].astype(np.float64)


def precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Precision@k = |hits in top k| / k  (k, not the list length, as ranx and trec_eval)."""
    return _top(hits, k).sum(axis=1) / k


def recall(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@k = |hits in top k| / |R|."""
    return _top(hits, k).sum(axis=1) / n_relevant


def hit_rate(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """HitRate@k = 1 if any of the top k is relevant, else 0."""
    return (_top(hits, k).sum(axis=1) > 0).astype(np.float64)


def ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k = DCG@k / IDCG@k, DCG@k = Σ_{i≤k, L_i∈R} 1 / log2(i + 1).

    IDCG@k is the DCG of min(|R|, k) hits at ranks 1..min(|R|, k).
    """
    top = _top(hits, k)
    discounts = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    return (top @ discounts) / ideal[np.minimum(n_relevant, k)]


def average_precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """AP@k = Σ_{i≤k, L_i∈R} Precision@i / |R|  (MAP@k is its mean over users)."""
    top = _top(hits, k)
    precision_at_i = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
    return (precision_at_i * top).sum(axis=1) / n_relevant


def reciprocal_rank(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """RR@k = 1 / rank of the first relevant item in the top k, 0 if none (MRR = mean)."""
    top = _top(hits, k)
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


FUNCTIONS = {
    "precision": precision,
    "recall": recall,
    "ndcg": ndcg,
    "map": average_precision,
    "mrr": reciprocal_rank,
    "hit_rate": hit_rate,
}
