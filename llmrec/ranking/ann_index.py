"""faiss indexes over the item vectors (inner product): built, saved beside a fingerprint of the
vectors they index, and loaded again while that fingerprint is unchanged.

IVF (`IndexIVFFlat`): 4·√n lists by k-means on a sample of 64 items per list; a query scans the
`nprobe` lists nearest to it. HNSW (`IndexHNSWFlat`, 32 links per node): a query walks a graph
with a beam of `ef_search`. Both keep the vectors themselves, so their scores are float32 dot
products; what they give up is only which items they look at.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_path
from ..options import AnnIndex, flag

HNSW_LINKS = 32
HNSW_EF_CONSTRUCTION = 80
TRAIN_PER_LIST = 64  # k-means sample: items per IVF list (faiss warns below 39)
FORMAT = 1  # of the metadata file written beside an index


def faiss_module() -> Any:
    """faiss, or a one-line error saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise InputError(
            f"{flag('index')} needs faiss: pip install 'llmrec[ann]' (faiss-cpu)"
        ) from None
    return faiss


def ivf_lists(n_items: int) -> int:
    """IVF lists for a catalog: 4·√n, with at least 39 items per list to train them on."""
    return max(1, min(int(4 * math.sqrt(n_items)), n_items // 39))


def default_nprobe(n_lists: int) -> int:
    """Lists an IVF query scans by default: 1/32 of them, and at least 16 (all, if fewer)."""
    return min(n_lists, max(16, n_lists // 32))


DEFAULT_EF_SEARCH = 128


def vectors_fingerprint(items: np.ndarray) -> str:
    """sha256 of the item matrix's shape and bytes (rows in the rank's catalog order)."""
    digest = hashlib.sha256(f"{items.shape} {items.dtype}".encode())
    digest.update(np.ascontiguousarray(items).data)
    return digest.hexdigest()


@dataclass
class Index:
    """A faiss index over the catalog, and how it came to be (for the run's summary)."""

    faiss_index: Any
    kind: AnnIndex
    note: str  # "built in 12.3 s", "reused from idx.faiss", …

    def configure(self, nprobe: int | None, ef_search: int | None) -> str:
        """Set the query-time knob; return it as the summary names it."""
        if self.kind == "ivf":
            lists = self.faiss_index.nlist
            self.faiss_index.nprobe = min(nprobe, lists) if nprobe else default_nprobe(lists)
            return f"nprobe {self.faiss_index.nprobe} of {self.faiss_index.nlist} lists"
        self.faiss_index.hnsw.efSearch = ef_search or DEFAULT_EF_SEARCH
        return f"ef_search {self.faiss_index.hnsw.efSearch}"


def open_index(items: np.ndarray, kind: AnnIndex, path: str | None) -> Index:
    """The index of `kind` over `items`: loaded from `path` if it was built from these very
    vectors, else built (and saved there, replacing what was)."""
    faiss = faiss_module()
    fingerprint = vectors_fingerprint(items)
    wanted = {"format": FORMAT, "kind": kind, "items": len(items), "fingerprint": fingerprint}
    if path and _saved_meta(path) == wanted:
        return Index(faiss.read_index(path), kind, f"reused from {path}")
    started = time.perf_counter()
    index = build_index(items, kind)
    note = f"built in {time.perf_counter() - started:.1f} s"
    if path:
        save_index(index, path, wanted)
        note += f", saved to {path}"
    return Index(index, kind, note)


def build_index(items: np.ndarray, kind: AnnIndex) -> Any:
    """A new faiss index of `kind` holding every item vector (row i is item column i)."""
    faiss = faiss_module()
    items = np.ascontiguousarray(items, dtype=np.float32)
    dim = items.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        lists = ivf_lists(len(items))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = min(len(items), TRAIN_PER_LIST * lists)
        rows = np.sort(np.random.default_rng(0).choice(len(items), sample, replace=False))
        index.train(items[rows])
    index.add(items)
    return index


def save_index(index: Any, path: str, meta: dict) -> None:
    """Write the index and its metadata file (`PATH.json`), each replaced only when complete."""
    faiss = faiss_module()
    with atomic_path(path) as tmp:
        faiss.write_index(index, tmp)
    with atomic_path(meta_path(path)) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=1) + "\n")


def meta_path(path: str) -> str:
    return path + ".json"


def _saved_meta(path: str) -> dict | None:
    """The metadata saved beside an index at `path`, if both are there and readable."""
    try:
        if not Path(path).is_file():
            return None
        return json.loads(Path(meta_path(path)).read_text())
    except (OSError, ValueError):
        return None
