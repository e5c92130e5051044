"""Beyond-accuracy measures of recommendation lists: coverage, concentration, novelty,
popularity and intra-list diversity.

Per-user measures (novelty, popularity, diversity) are means over each user's top-k list and
are NaN for an empty list; catalog measures (coverage, Gini) describe all lists together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.interactions import read_interactions
from ..errors import InputError
from ..io.vectors import VectorTable, read_vectors

BLOCK_BYTES = 256 * 2**20


def coverage(counts: np.ndarray) -> float:
    """Catalog coverage = |items recommended to anyone| / |catalog|."""
    return float((counts > 0).mean()) if len(counts) else 0.0


def gini(counts: np.ndarray) -> float:
    """Gini index of recommendation counts over catalog items (0 = even, → 1 = concentrated).

    G = Σ_i (2i − n − 1)·c_(i) / (n·Σc), with c sorted ascending and i = 1..n.
    """
    n, total = len(counts), counts.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * np.sort(counts)).sum() / (n * total))


def list_mean(values: np.ndarray, lists: np.ndarray, k: int) -> np.ndarray:
    """Per user, the mean of `values[item]` over the top-k list (NaN for an empty list)."""
    top = lists[:, :k]
    valid = top >= 0
    sums = np.where(valid, values[np.maximum(top, 0)], 0.0).sum(axis=1)
    counts = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def intra_list_diversity(
    lists: np.ndarray, rows: np.ndarray, vectors: np.ndarray, k: int
) -> np.ndarray:
    """ILD@k = 1 − mean pairwise cosine of the list's items (NaN with fewer than 2 known items).

    Uses Σ_{a<b} x_a·x_b = (‖Σx‖² − Σ‖x‖²) / 2 over unit vectors, in blocks of users.
    """
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    top = lists[:, :k]
    vector_rows = np.where(top >= 0, rows[np.maximum(top, 0)], -1)
    out = np.full(len(top), np.nan)
    step = max(1, BLOCK_BYTES // (max(k, 1) * unit.shape[1] * 4))
    for start in range(0, len(top), step):
        block = vector_rows[start : start + step]
        known = block >= 0
        x = unit[np.maximum(block, 0)] * known[..., None]
        m = known.sum(axis=1)
        pair_sum = ((x.sum(axis=1) ** 2).sum(axis=1) - m) / 2
        pairs = m * (m - 1) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + step] = np.where(m >= 2, 1 - pair_sum / pairs, np.nan)
    return out


@dataclass
class Context:
    """What beyond-accuracy measures need: a catalog, training popularity, item vectors."""

    catalog: np.ndarray | None = None  # item ids
    train_users_per_item: pd.Series | None = None  # index item id
    n_train_users: int = 0
    items: VectorTable | None = None

    @classmethod
    def from_files(cls, items_path: str | None, train_path: str | None) -> Context | None:
        """Load the vector table and/or training history given on the command line."""
        if not items_path and not train_path:
            return None
        items = read_vectors(items_path, "items") if items_path else None
        popularity, n_users = None, 0
        if train_path:
            train = read_interactions(train_path, what="training history")
            pairs = train[["user_id", "item_id"]].drop_duplicates()
            popularity = pairs.groupby("item_id").size()
            n_users = int(pairs["user_id"].nunique())
        catalog = items.ids if items is not None else np.asarray(popularity.index, dtype=object)
        if len(catalog) == 0:
            raise InputError("the catalog for beyond-accuracy measures is empty")
        return cls(catalog, popularity, n_users, items)

    def measure(
        self, lists: np.ndarray, item_names: np.ndarray, ks: list[int]
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Per-user and catalog measures at each k for a (users × K) matrix of item codes."""
        per_user: dict[str, np.ndarray] = {}
        catalog: dict[str, float] = {}
        names = pd.Index(item_names.astype(str))
        in_catalog = pd.Index(self.catalog.astype(str)).get_indexer(names)
        if self.train_users_per_item is not None:
            counts = self.train_users_per_item.reindex(names, fill_value=0).to_numpy(float)
            # self-information with add-one smoothing, so items unseen in training stay finite
            info = -np.log2((counts + 1) / (self.n_train_users + 1))
        for k in ks:
            top = lists[:, :k]
            listed = in_catalog[top[top >= 0]]
            rec_counts = np.bincount(listed[listed >= 0], minlength=len(self.catalog))
            catalog[f"coverage@{k}"] = coverage(rec_counts)
            catalog[f"gini@{k}"] = gini(rec_counts)
            if self.train_users_per_item is not None:
                per_user[f"novelty@{k}"] = list_mean(info, lists, k)
                per_user[f"popularity@{k}"] = list_mean(counts, lists, k)
            if self.items is not None:
                rows = pd.Index(self.items.ids.astype(str)).get_indexer(names)
                per_user[f"ild@{k}"] = intra_list_diversity(lists, rows, self.items.vectors, k)
        return per_user, catalog
