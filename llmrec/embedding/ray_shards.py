"""`embed ITEMS_FOLDER/ --engine ray`: the shards are read on the Ray workers, never whole on
the driver.

The driver lists the shards and checks their columns from Parquet footers and CSV headers
(`plan_shards`, as the local engine does). Ray Data then reads the shards twice. First to check
their rows: the workers render every text as the local engine does and send back, per block,
only its shard, its row count, where an id or text is empty, and a 64-bit hash of each id and
text (16 bytes a row), so that the driver can count rows per shard, report problems at their
shard and row, and find ids that appear twice (a hash seen twice is confirmed, or cleared, by
reading those shards' ids). Then to embed: the encoding actors render the texts again and
write shards that the driver renames by their first row (`on_ray.name_shards`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from ..engine.ray import RayOptions, ray_call, ray_session
from ..errors import LlmrecError
from ..io.atomic import staged_folder
from ..io.shards import shard_schema
from ..io.tables import (
    check_last_quote,
    csv_options,
    empty_value_error,
    first_empty,
    no_rows_error,
)
from .encoder import Encoder
from .on_ray import actor_load, block_rows, default_workers, encode_on_pool, name_shards, path_runs
from .run import EmbedRun, vector_meta
from .shards import (
    WHAT,
    RowSpots,
    ShardPlan,
    duplicate_error,
    read_shard_ids,
    row_hashes,
    shard_texts,
)
from .texts import empty_text_error, first_duplicate

# CPU share of a read task while the encoding actors run: they hold all but a tenth of a CPU
# each (on_ray.ACTOR_CPUS), and reading a block costs little next to encoding it.
READ_CPUS = 0.1


def read_on_ray(ray, plan: ShardPlan, num_cpus: float | None = None):
    """The plan's shards as a Ray Data dataset of their id and text columns and each row's
    file (`path`), read on the workers (by tasks of `num_cpus` each), CSV parsed as the local
    engine parses it."""
    common = {"include_paths": True, "partitioning": None, "num_cpus": num_cpus}
    files = [os.path.abspath(file) for file in plan.files]
    if plan.fmt == "parquet":
        context = ray.data.DataContext.get_current()
        before, context.use_datasource_v2 = context.use_datasource_v2, False
        try:  # the files listed here, not in a listing task that would wait for a whole CPU
            dataset = ray.data.read_parquet(files, file_extensions=None, **common)
        finally:
            context.use_datasource_v2 = before
        return dataset.select_columns([*plan.needed, "path"])
    parse, convert = csv_options(plan.fmt, plan.needed, plan.needed)
    return ray.data.read_csv(
        files, parse_options=parse, convert_options=convert, file_extensions=None, **common
    )


def check_block(batch: pa.Table, plan: ShardPlan) -> pa.Table:
    """On a worker: what the driver needs to check a block of rows, one row per shard in it."""
    paths = batch.column("path").to_numpy(zero_copy_only=False)
    out: dict[str, list] = {key: [] for key in ("file", "rows", "empty_id", "empty_text")}
    out.update(empty_text_id=[], ids=[], texts=[], last_row=[])
    for start, stop in path_runs(paths):
        ids, texts = shard_texts(batch.slice(start, stop - start), plan, paths[start])
        empty = (texts == "").to_numpy(dtype=bool)
        out["file"].append(os.path.basename(paths[start]))
        out["rows"].append(stop - start)
        out["empty_id"].append(first_empty(ids))
        out["empty_text"].append(int(empty.argmax()) if empty.any() else -1)
        out["empty_text_id"].append(str(ids.iloc[out["empty_text"][-1]]) if empty.any() else "")
        out["ids"].append(row_hashes(ids).tobytes())
        out["texts"].append(row_hashes(texts).tobytes())
        last = {name: batch.column(name)[stop - 1].as_py() for name in plan.needed}
        out["last_row"].append(json.dumps(last))
    types = {"ids": pa.large_binary(), "texts": pa.large_binary()}
    return pa.table({key: pa.array(values, types.get(key)) for key, values in out.items()})


def check_on_ray(ray, plan: ShardPlan) -> tuple[np.ndarray, int]:
    """Check the shards' rows on the workers as the local engine checks them (no rows, then an
    empty id, an id twice, an empty text; the first of each in file order): the ids' hashes in
    input order, and the number of distinct texts."""
    blocks = read_on_ray(ray, plan).map_batches(
        check_block, fn_kwargs={"plan": plan}, batch_size=None, batch_format="pyarrow"
    )
    parts = ray_call(lambda: list(blocks.iter_batches(batch_size=None, batch_format="pyarrow")))
    names = {os.path.basename(file): i for i, file in enumerate(plan.files)}
    if not parts:
        raise no_rows_error(plan.files[0], WHAT)
    summary = pa.concat_tables(parts)
    read = summary.column("file").to_pylist()
    if not set(read) <= set(names):
        raise LlmrecError(f"Ray read {min(set(read) - set(names))}, not one of the shards")
    shard = np.array([names[name] for name in read], dtype=np.int64)
    if (np.diff(shard) < 0).any():
        raise LlmrecError("Ray read the shards out of file-name order; run again")
    rows = summary.column("rows").to_numpy()
    counts = np.bincount(shard, weights=rows, minlength=len(plan.files)).astype(np.int64)
    if (counts == 0).any():
        raise no_rows_error(plan.files[int(np.argmin(counts))], WHAT)
    if plan.fmt != "parquet":
        check_last_quotes(plan, shard, summary.column("last_row").to_pylist(), counts)
    spots = RowSpots(plan.files, counts)
    starts = np.concatenate([[0], np.cumsum(rows)[:-1]])
    row, _ = _first(starts, summary.column("empty_id").to_numpy())
    if row >= 0:
        raise empty_value_error(*spots(row), plan.id_col)
    id_hashes = np.frombuffer(b"".join(summary.column("ids").to_pylist()), dtype=np.uint64)
    _check_unique(plan, spots, id_hashes)
    row, block = _first(starts, summary.column("empty_text").to_numpy())
    if row >= 0:
        item = summary.column("empty_text_id")[block].as_py()
        raise empty_text_error(*spots(row), plan.id_col, item, plan.columns)
    text_hashes = np.frombuffer(b"".join(summary.column("texts").to_pylist()), dtype=np.uint64)
    return id_hashes, len(np.unique(text_hashes))


def check_last_quotes(
    plan: ShardPlan, shard: np.ndarray, last_rows: list[str], counts: np.ndarray
) -> None:
    """Fail, as the local engine does, on a CSV shard that ends inside an open quote: the last
    row of each shard (from its last block) is checked against the end of its file."""
    for index, file in enumerate(plan.files):
        last_column = shard_schema(file, plan.fmt).names[-1]
        if last_column in plan.needed:
            block = int(np.flatnonzero(shard == index)[-1])
            value = json.loads(last_rows[block])[last_column]
            check_last_quote(file, value, int(counts[index]))


def _first(starts: np.ndarray, offsets: np.ndarray) -> tuple[int, int]:
    """The first row (0-based, of all shards) that a block flags at its offset (-1: none),
    and that block; (-1, -1) when none does."""
    flagged = np.flatnonzero(offsets >= 0)
    if not len(flagged):
        return -1, -1
    block = int(flagged[0])  # blocks come in input order
    return int(starts[block] + offsets[block]), block


def _check_unique(plan: ShardPlan, spots: RowSpots, id_hashes: np.ndarray) -> None:
    """Fail on the first id that appears twice. Rows whose hashes collide are the only
    suspects; their ids are read from their shards to tell duplicates from a collision."""
    order = np.argsort(id_hashes, kind="stable")
    same = id_hashes[order[1:]] == id_hashes[order[:-1]]
    if not same.any():
        return
    suspects = np.unique(np.concatenate([order[1:][same], order[:-1][same]]))
    at = [spots(int(row)) for row in suspects]
    read = {file: read_shard_ids(plan, file) for file in dict.fromkeys(file for file, _ in at)}
    ids = pd.Series([read[file].iloc[row - 1] for file, row in at], dtype=object)
    pair = first_duplicate(ids)
    if pair:
        raise duplicate_error(plan, ids.iloc[pair[0]], at[pair[0]], at[pair[1]])


def embed_folder_on_ray(
    plan: ShardPlan,
    output: str,
    encoder: Encoder,
    *,
    model: str | None,
    options: RayOptions,
    chunk_rows: int,
    batch_size: int = 64,
    normalize: bool = True,
    allow_download: bool = False,
    allow_pickle: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EmbedRun:
    """Embed the shards of `plan` on Ray into the folder `output`, reading them on the workers:
    the same shards `embed_on_ray` writes for the same rows in one file."""
    meta = vector_meta(encoder, normalize, plan.label)
    with ray_session(options) as ray, staged_folder(output) as folder:
        id_hashes, distinct = check_on_ray(ray, plan)
        n_items = len(id_hashes)
        workers = options.concurrency or default_workers(ray, options)
        rows = block_rows(n_items, workers, chunk_rows)
        actor_args = {
            "model": model,
            "load": actor_load(encoder, options, allow_download, allow_pickle),
            "meta": meta,
            "folder": folder,
            "batch_size": batch_size,
            "plan": plan,
        }
        if on_start:
            on_start(n_items)
        written = encode_on_pool(
            ray,
            read_on_ray(ray, plan, num_cpus=READ_CPUS),
            actor_args,
            batch_rows=rows,
            workers=min(workers, -(-n_items // rows)),
            options=options,
            on_batch=on_batch,
        )
        name_shards(folder, written, id_hashes)
    return EmbedRun(
        rows=n_items,
        unique_texts=distinct,
        encoded=n_items,
        reused=0,
        resumed_chunks=0,
        truncated=sum(shard["truncated"] for shard in written),
    )
