"""The Parquet vector-table contract shared by items and users.

Columns: an id (`item_id` / `user_id`, string), `embedding` (fixed_size_list<float32>[dim]) and
stage columns; schema metadata under `llmrec.*` keys says which model, pooling and settings made
the vectors. Embeddings are stored plain (no compression) and read a row group at a time; a
folder of `part-*.parquet` shards reads as one table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..options import flag
from .atomic import atomic_path
from .tables import reading_error

META_PREFIX = "llmrec."


ID_COLUMNS = {"items": "item_id", "users": "user_id"}
SPACE_KEY = "space"  # metadata of user vectors not in the items' space: "seq" for a model's


ROW_GROUP_ROWS = 16_384  # rows per Parquet row group: about 25 MB of vectors at d = 384


DEFAULT_COMPRESSION = "zstd"


def parquet_options(schema: pa.Schema) -> dict:
    """Parquet writer options for a vector table: the id and stage columns compressed and
    dictionary-encoded, the embedding stored plain (no compression, dictionary or statistics,
    which would cost time and save next to nothing on floats)."""
    others = [f.name for f in schema if f.name != "embedding"]
    return {
        "compression": {name: DEFAULT_COMPRESSION for name in others}
        | {"embedding.list.element": "none"},
        "use_dictionary": others,
        "write_statistics": others,
    }


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

    @property
    def matrix(self) -> np.ndarray:
        """The vectors as one (rows × dim) float32 matrix, row i for ids[i]."""
        return self.vectors

    def with_shape_meta(self) -> VectorTable:
        """The table with the kind, dim and row count in `meta`, as a written file has them."""
        self.meta.update(kind=self.kind, dim=str(self.dim), rows=str(len(self)))
        return self

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


def vector_schema(
    kind: str, dim: int, meta: dict[str, str], rows: int, extra: dict[str, pa.DataType]
) -> pa.Schema:
    """The Arrow schema of a vector table, with its `llmrec.*` metadata."""
    fields = [
        pa.field(ID_COLUMNS[kind], pa.string()),
        pa.field("embedding", pa.list_(pa.float32(), dim)),
        *(pa.field(name, dtype) for name, dtype in extra.items()),
    ]
    meta = {**meta, "kind": kind, "dim": str(dim), "rows": str(rows)}
    return pa.schema(
        fields, metadata={f"{META_PREFIX}{k}": str(v) for k, v in sorted(meta.items())}
    )


def vector_batch(schema: pa.Schema, ids: np.ndarray, vectors: np.ndarray, extra: dict) -> pa.Table:
    """One block of rows of a vector table, in `schema`."""
    dim = schema.field("embedding").type.list_size
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    columns = [
        pa.array(np.asarray(ids).astype(str), pa.string()),
        pa.FixedSizeListArray.from_arrays(flat, dim),
        *(pa.array(extra[f.name], f.type) for f in schema if f.name in extra),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def write_vectors(table: VectorTable, path: str) -> None:
    """Write a vector table atomically as Parquet with its `llmrec.*` schema metadata."""
    extra = {name: pa.array(values).type for name, values in table.extra.items()}
    schema = vector_schema(table.kind, table.dim, table.meta, len(table), extra)
    with atomic_path(path) as tmp:
        pq.write_table(
            vector_batch(schema, table.ids, table.vectors, table.extra),
            tmp,
            row_group_size=ROW_GROUP_ROWS,
            **parquet_options(schema),
        )


def read_vectors(path: str, kind: str | None = None) -> VectorTable:
    """Load a vector table (a file or a folder of shards), checking it is one (and of `kind`,
    if given) with finite values."""
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
    shards = [_read_shard(shard, meta) for shard in shard_files(path)]
    if len(shards) == 1:
        return shards[0]
    ids = np.concatenate([shard.ids for shard in shards])
    repeated = pd.Index(ids).duplicated()
    if repeated.any():
        raise InputError(
            f"{path}: {ID_COLUMNS[found]} {ids[repeated.argmax()]!r} is in two shards; "
            "rebuild the folder"
        )
    return VectorTable(
        found,
        ids,
        np.concatenate([shard.vectors for shard in shards]),
        meta,
        {name: np.concatenate([shard.extra[name] for shard in shards]) for name in shards[0].extra},
    )


def shard_files(path: str) -> list[str]:
    """The Parquet files of a vector table: the file itself, or a folder's shards by name."""
    if not os.path.isdir(path):
        return [path]
    shards = sorted(
        str(entry) for entry in Path(path).glob("*.parquet") if not entry.name.startswith(".")
    )
    if not shards:
        raise InputError(f"{path}: folder holds no .parquet shards; give a vector table")
    return shards


def _read_shard(path: str, meta: dict[str, str]) -> VectorTable:
    """One Parquet file of a vector table whose (checked) metadata is `meta`."""
    id_col = ID_COLUMNS[meta["kind"]]
    dim = int(meta.get("dim", "0"))
    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        if id_col not in names or "embedding" not in names:
            raise InputError(f"{path}: a vector table needs columns {id_col!r} and 'embedding'")
        table = parquet.read(columns=[n for n in names if n != "embedding"])
        vectors = _read_embeddings(parquet, path, dim)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"{path}: the vector table is damaged ({str(exc).splitlines()[0]}); rebuild it"
        ) from exc
    if len(vectors) != table.num_rows:
        raise InputError(f"{path}: the vector table is damaged (column lengths differ); rebuild it")
    bad = ~np.isfinite(vectors.sum(axis=1, dtype=np.float64))  # float64 cannot overflow here
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
    return VectorTable(meta["kind"], ids, vectors, meta, extra)


def _read_embeddings(parquet: pq.ParquetFile, path: str, dim: int) -> np.ndarray:
    """The `embedding` column as one writable float32 matrix, decoded by Arrow's threads a
    batch at a time with little read-ahead, so that the Arrow copy stays a few batches."""
    import pyarrow.dataset as ds

    field = parquet.schema_arrow.field("embedding").type
    if not pa.types.is_fixed_size_list(field) or field.list_size != dim:
        raise InputError(f"{path}: 'embedding' is not a list of {dim} floats as its metadata says")
    out = np.empty((parquet.metadata.num_rows, dim), dtype=np.float32)
    row = 0
    batches = ds.dataset(path, format="parquet").to_batches(
        columns=["embedding"], batch_size=ROW_GROUP_ROWS, batch_readahead=2, fragment_readahead=1
    )
    for batch in batches:
        column = batch.column(0)
        if column.null_count:
            raise InputError(f"{path}: 'embedding' has empty rows; rebuild the table")
        out[row : row + len(column)] = (
            column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        )
        row += len(column)
    return out


def _group_embeddings(parquet: pq.ParquetFile, group: int, dim: int, path: str) -> np.ndarray:
    """One row group's `embedding` column as a (rows, dim) float32 matrix."""
    column = parquet.read_row_group(group, columns=["embedding"]).column(0).combine_chunks()
    if column.null_count:
        raise InputError(f"{path}: 'embedding' has empty rows; rebuild the table")
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dim)


def read_meta(path: str) -> dict[str, str]:
    """Return a vector table's `llmrec.*` metadata (prefix removed), or fail if it is none.

    For a folder, every shard must carry the same metadata; `rows` is their total.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: vector file not found")
    shards = shard_files(path)
    meta = _file_meta(shards[0])
    if len(shards) == 1:
        return meta
    rows = 0
    for shard in shards:
        other = _file_meta(shard) if shard != shards[0] else meta
        differs = sorted(
            k for k in meta.keys() | other.keys() if k != "rows" and meta.get(k) != other.get(k)
        )
        if differs:
            raise InputError(
                f"{shard}: its {differs[0]!r} differs from {shards[0]}'s; the shards of "
                "one vector table come from one run"
            )
        rows += int(other.get("rows", "0"))
    return {**meta, "rows": str(rows)}


def _file_meta(path: str) -> dict[str, str]:
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


class StoredVectors:
    """The vectors of an existing item table, looked up by text hash, one row group at a time.

    This is how embed reuses last night's vectors for unchanged texts without holding the whole
    table: only the `text_hash` column is read up front; embeddings are read from the row groups
    that hold the hashes asked for (consecutive lookups usually hit the same group).
    """

    def __init__(self, path: str, meta: dict[str, str], parquet: pq.ParquetFile):
        self.path, self.meta, self._file = path, meta, parquet
        hashes = self._file.read(columns=["text_hash"]).column("text_hash").to_pandas()
        unique = ~hashes.duplicated().to_numpy()
        self._index = pd.Index(hashes[unique].to_numpy(dtype=object))
        self._rows = np.flatnonzero(unique)
        sizes = [
            self._file.metadata.row_group(g).num_rows for g in range(self._file.num_row_groups)
        ]
        self._group_starts = np.concatenate([[0], np.cumsum(sizes)])
        self._cached: tuple[int, np.ndarray] | None = None
        self.dim = int(meta["dim"])

    @classmethod
    def open(cls, path: str) -> StoredVectors:
        """Open an item vector table for lookups; fail if it is not one or has no text hashes."""
        meta = read_meta(path)
        if meta.get("kind") != "items":
            raise InputError(f"{path}: holds {meta.get('kind')} vectors, not item vectors")
        if os.path.isdir(path):
            raise InputError(
                f"{path}: a folder of shards can't be reused yet; give {flag('reuse_output')}, "
                f"or a vector file from 'llmrec embed {flag('engine')} local'"
            )
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({reading_error(exc)})") from exc
        if "text_hash" not in parquet.schema_arrow.names:
            raise InputError(f"{path}: has no text_hash column, so its rows can't be matched")
        return cls(path, meta, parquet)

    def has(self, hashes: np.ndarray) -> np.ndarray:
        """Which of these text hashes have a stored vector."""
        return self._index.get_indexer(hashes) >= 0

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, vectors of the found hashes in order) for an array of text hashes."""
        positions = self._index.get_indexer(hashes)
        found = positions >= 0
        rows = self._rows[positions[found]]
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        groups = np.searchsorted(self._group_starts, rows, side="right") - 1
        for group in np.unique(groups):
            take = groups == group
            out[take] = self._group(int(group))[rows[take] - self._group_starts[group]]
        return found, out

    def _group(self, group: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != group:
            vectors = _group_embeddings(self._file, group, self.dim, self.path)
            if not np.isfinite(vectors).all():
                raise InputError(f"{self.path}: has NaN or infinite values; rebuild it")
            self._cached = (group, vectors)
        return self._cached[1]
