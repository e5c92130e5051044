"""The vector-table contract: Parquet files of ids and embeddings written by embed and profile.

Columns: the id (`item_id` or `user_id`, string), `embedding` (fixed_size_list<float32>[dim]),
plus stage columns (`text_hash` for items, `n_history` for users). Schema metadata under
`llmrec.*` keys says what made the vectors, so that `rank` can refuse to compare vectors
from different models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError
from .tables import atomic_path

META_PREFIX = "llmrec."
ID_COLUMNS = {"items": "item_id", "users": "user_id"}


@dataclass
class VectorTable:
    """Ids, their float32 vectors (one row each) and the `llmrec.*` metadata that made them."""

    kind: str  # "items" or "users"
    ids: np.ndarray  # object array of str, shape (n,)
    vectors: np.ndarray  # float32, shape (n, dim)
    meta: dict[str, str] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # stage columns

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def sorted_by_id(self) -> VectorTable:
        """The same table with rows in id order, which makes ties resolve by id."""
        order = np.argsort(self.ids.astype(str), kind="stable")
        if np.array_equal(order, np.arange(len(order))):
            return self
        return VectorTable(
            self.kind,
            self.ids[order],
            self.vectors[order],
            dict(self.meta),
            {k: v[order] for k, v in self.extra.items()},
        )


def write_vectors(table: VectorTable, path: str) -> None:
    """Write a vector table atomically as Parquet with its `llmrec.*` schema metadata."""
    flat = pa.array(np.ascontiguousarray(table.vectors, dtype=np.float32).reshape(-1))
    columns = {
        ID_COLUMNS[table.kind]: pa.array(table.ids.astype(str), pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, table.dim),
        **{name: pa.array(values) for name, values in table.extra.items()},
    }
    meta = {**table.meta, "kind": table.kind, "dim": str(table.dim), "rows": str(len(table))}
    arrow = pa.table(columns).replace_schema_metadata(
        {f"{META_PREFIX}{k}": str(v) for k, v in sorted(meta.items())}
    )
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp, compression="zstd")


def read_vectors(path: str, kind: str | None = None) -> VectorTable:
    """Load a vector table, checking it is one (and of `kind`, if given) with finite values."""
    meta = read_meta(path)
    found = meta.get("kind")
    if kind and found != kind:
        raise InputError(
            f"{path}: holds {found} vectors, expected {kind} vectors"
            + (
                " (make it with 'llmrec embed')"
                if kind == "items"
                else " (make it with 'llmrec profile')"
            )
        )
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"{path}: the vector table is damaged ({str(exc).splitlines()[0]}); rebuild it"
        ) from exc
    id_col = ID_COLUMNS[found]
    if id_col not in table.column_names or "embedding" not in table.column_names:
        raise InputError(f"{path}: a vector table needs columns {id_col!r} and 'embedding'")
    embedding = table.column("embedding").combine_chunks()
    dim = int(meta.get("dim", "0"))
    if not pa.types.is_fixed_size_list(embedding.type) or embedding.type.list_size != dim:
        raise InputError(f"{path}: 'embedding' is not a list of {dim} floats as its metadata says")
    if embedding.null_count:
        raise InputError(f"{path}: 'embedding' has empty rows; rebuild the table")
    flat = embedding.flatten().to_numpy(zero_copy_only=False)
    vectors = np.array(flat, dtype=np.float32).reshape(-1, dim)  # a writable copy for torch
    bad = ~np.isfinite(vectors).all(axis=1)
    ids = np.asarray(table.column(id_col).to_pylist(), dtype=object)
    if bad.any():
        row = int(bad.argmax())
        raise InputError(
            f"{path}: row {row + 1} ({id_col} {ids[row]!r}) has NaN or infinite "
            "values; rebuild the table"
        )
    extra = {
        name: table.column(name).to_numpy()
        for name in table.column_names
        if name not in (id_col, "embedding")
    }
    return VectorTable(found, ids, vectors, meta, extra)


def read_meta(path: str) -> dict[str, str]:
    """Return a vector table's `llmrec.*` metadata (prefix removed), or fail if it is none."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: vector file not found")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(
            f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]}); "
            "vector tables come from 'llmrec embed' or 'llmrec profile'"
        ) from exc
    raw = schema.metadata or {}
    meta = {
        k.decode()[len(META_PREFIX) :]: v.decode()
        for k, v in raw.items()
        if k.decode().startswith(META_PREFIX)
    }
    if meta.get("kind") not in ID_COLUMNS:
        raise InputError(
            f"{path}: not an llmrec vector table (no llmrec metadata); "
            "make one with 'llmrec embed' or 'llmrec profile'"
        )
    return meta


def check_compatible(
    users: VectorTable, items: VectorTable, users_path: str, items_path: str
) -> None:
    """Refuse to score users against items made by another model or of another dimension."""
    for key, label in (("dim", "dimension"), ("model_fingerprint", "model")):
        u, i = users.meta.get(key), items.meta.get(key)
        if u != i:
            u_name = users.meta.get("model", "?") if key != "dim" else u
            i_name = items.meta.get("model", "?") if key != "dim" else i
            raise InputError(
                f"{users_path} and {items_path} come from different {label}s "
                f"({u_name}{_fp(users, key)} vs {i_name}{_fp(items, key)}); "
                "profile the users from this item table again"
            )


def _fp(table: VectorTable, key: str) -> str:
    if key != "model_fingerprint":
        return ""
    return f", fingerprint {table.meta.get('model_fingerprint', '?')[:12]}"
