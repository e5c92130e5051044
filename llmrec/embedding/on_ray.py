"""`embed --engine ray`: Ray Data's batch-inference pattern over llmrec's own encoder.

Rows reach Ray Data either as blocks the driver made from an item file it read and checked (as
the local engine does), or straight from a folder of shards that the workers read themselves
(`ray_shards`). `map_batches` runs them through a pool of actors that each load the model once
and write each batch as a Parquet shard under a provisional name. Ray Data hands the shards'
summaries back in input order (`ray_session` asks it to), so the driver renames each shard by
its first row (`part-000000004096.parquet`), after checking that its ids are the ones expected
there, and the folder reads back in input order. Nothing appears under the output name until
every shard is written. A text's vector does not depend on its batch (see `encoder`), so the
shards equal the local file row for row.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..engine.ray import RayOptions, ray_call, ray_session
from ..errors import LlmrecError
from ..io.atomic import staged_folder
from ..io.vectors import VectorTable, write_vectors
from .encoder import Encoder
from .run import EmbedRun, vector_meta
from .shards import ShardPlan, id_digest, row_hashes, shard_texts
from .texts import ItemTexts, text_hashes

# CPU share of an encoding actor: a little under one core, so that an actor per core still
# leaves Ray Data room to schedule its own tasks (a pool holding every CPU can stall it).
ACTOR_CPUS = 0.9


class EncodeShards:
    """A Ray Data actor: loads the model once, then encodes batches and writes them as shards.

    A batch holds either rows the driver prepared (id, text, text_hash) or, with `plan`, rows
    of the plan's shards as Ray Data read them (their columns and the file's `path`).
    """

    def __init__(
        self,
        model: str | None,
        load: dict,
        meta: dict,
        folder: str,
        batch_size: int,
        plan: ShardPlan | None = None,
    ):
        import torch

        self.encoder = Encoder.load(model, **load)
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        mine = self.encoder.metadata()
        if any(meta[key] != value for key, value in mine.items()):
            raise LlmrecError(
                f"--model {model}: the worker's copy differs from the driver's "
                f"({mine['model_fingerprint']} vs {meta['model_fingerprint']}); "
                "give every node the same model folder"
            )
        self.meta, self.folder, self.batch_size = meta, Path(folder), batch_size
        self.normalize = meta["normalized"] == "true"
        self.plan = plan

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids, texts, hashes = self._rows(batch) if self.plan else _prepared(batch)
        tokens = self.encoder.tokenize(texts)
        vectors = self.encoder.encode_tokens(
            tokens, batch_size=self.batch_size, normalize=self.normalize
        )
        name = f"pending-{uuid.uuid4().hex}.parquet"  # renamed by the driver, in input order
        table = VectorTable("items", ids, vectors, self.meta, {"text_hash": hashes})
        write_vectors(table, str(self.folder / name))
        return pa.table(
            {
                "shard": [name],
                "rows": [len(ids)],
                "truncated": [sum(len(t) >= self.encoder.max_length for t in tokens)],
                "digest": pa.array([id_digest(row_hashes(ids))], pa.uint64()),
            }
        )

    def _rows(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ids, texts and text hashes of rows read from the shards, rendered as locally."""
        paths = batch.column("path").to_numpy(zero_copy_only=False)
        parts = [
            shard_texts(batch.slice(start, stop - start), self.plan, paths[start])
            for start, stop in path_runs(paths)
        ]
        ids = pd.concat([part[0] for part in parts]).to_numpy(dtype=object)
        texts = pd.concat([part[1] for part in parts]).to_numpy(dtype=object)
        return ids, texts, text_hashes(texts)


def _prepared(batch: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(
        batch.column(name).to_numpy(zero_copy_only=False) for name in ("id", "text", "text_hash")
    )


def path_runs(paths: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of rows from one file in a batch that Ray Data read."""
    cuts = (np.flatnonzero(paths[1:] != paths[:-1]) + 1).tolist()
    return list(zip([0, *cuts], [*cuts, len(paths)], strict=True))


def actor_load(encoder: Encoder, options: RayOptions, allow_download: bool, allow_pickle: bool):
    """How every actor loads the model: with the settings of the driver's `encoder`."""
    return {
        "pooling": encoder.pooling,
        "max_length": encoder.max_length,
        "dtype": encoder.dtype,
        "device": "cuda" if options.gpus_per_worker else "cpu",
        "allow_download": allow_download,
        "allow_pickle": allow_pickle,
    }


def encode_on_pool(
    ray,
    dataset,
    actor_args: dict,
    *,
    batch_rows: int | None,
    workers: int,
    options: RayOptions,
    on_batch: Callable[[int], None] | None = None,
) -> list[dict]:
    """Run `dataset` through a pool of `workers` EncodeShards actors (batches of `batch_rows`
    rows; None: one block each): the written shards' summaries, in input order."""
    with warnings.catch_warnings():
        # max_restarts=0 (a failed actor fails the run; a rerun starts clean) is how Ray
        # Data's actor pool documents turning restarts off, but it goes through the
        # catch-all remote-args parameter, which warns as deprecated in this Ray.
        warnings.simplefilter("ignore", DeprecationWarning)
        shards = dataset.map_batches(
            EncodeShards,
            fn_constructor_kwargs=actor_args,
            batch_size=batch_rows,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=ACTOR_CPUS,
            num_gpus=options.gpus_per_worker or None,
            max_restarts=0,
        )
    return ray_call(lambda: list(_reported(shards.iter_rows(), on_batch)))


def name_shards(folder: str, written: list[dict], id_hashes: np.ndarray) -> None:
    """Rename the shards `written` (in input order) by their first row, after checking that
    each holds the ids expected at its rows (`id_hashes`: `row_hashes` of all ids, in order),
    and remove anything else from the folder: shards a killed attempt left behind."""
    rows = np.array([shard["rows"] for shard in written], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(rows)])
    if starts[-1] != len(id_hashes):
        raise LlmrecError(f"Ray returned {starts[-1]:,} rows of {len(id_hashes):,}; run again")
    names = []
    for shard, start, stop in zip(written, starts[:-1], starts[1:], strict=True):
        if shard["digest"] != id_digest(id_hashes[start:stop]):
            raise LlmrecError(f"Ray returned rows {start:,}–{stop:,} out of input order; run again")
        names.append(f"part-{start:012d}.parquet")
        os.replace(os.path.join(folder, shard["shard"]), os.path.join(folder, names[-1]))
    for leftover in set(os.listdir(folder)) - set(names):
        path = os.path.join(folder, leftover)
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)


def embed_on_ray(
    items: ItemTexts,
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
    """Embed `items` on Ray into the folder `output` (replacing what is there only at the end).

    `encoder` is `model` as loaded here, with the settings every actor loads it with; its
    metadata goes into every shard, and an actor whose copy of the model differs fails.
    """
    meta = vector_meta(encoder, normalize, items.template)
    load = actor_load(encoder, options, allow_download, allow_pickle)
    with ray_session(options) as ray, staged_folder(output) as folder:
        workers = options.concurrency or default_workers(ray, options)
        blocks = _blocks(items, block_rows(len(items), workers, chunk_rows))
        actor_args = {
            "model": model,
            "load": load,
            "meta": meta,
            "folder": folder,
            "batch_size": batch_size,
        }
        if on_start:
            on_start(len(items))
        written = encode_on_pool(
            ray,
            ray.data.from_arrow(blocks),
            actor_args,
            batch_rows=None,
            workers=min(workers, len(blocks)),
            options=options,
            on_batch=on_batch,
        )
        name_shards(folder, written, row_hashes(items.ids))
    return EmbedRun(
        rows=len(items),
        unique_texts=len(items.texts),
        encoded=len(items),
        reused=0,
        resumed_chunks=0,
        truncated=sum(row["truncated"] for row in written),
    )


def _reported(shards: Iterator[dict], on_batch: Callable[[int], None] | None) -> Iterator[dict]:
    """The shards' summary rows as they finish, telling on_batch how many items each held."""
    for shard in shards:
        if on_batch:
            on_batch(shard["rows"])
        yield shard


def block_rows(n_items: int, workers: int, chunk_rows: int) -> int:
    """Rows per block: at most chunk_rows, and small enough for 4 blocks per worker, so that
    a catalog of a few blocks does not leave workers idle while one finishes the last."""
    return max(1, min(chunk_rows, -(-n_items // (4 * workers))))


def _blocks(items: ItemTexts, rows: int) -> list[pa.Table]:
    """The items as Arrow tables of `rows` consecutive rows: id, text, text hash."""
    blocks = []
    for start in range(0, len(items), rows):
        codes = items.codes[start : start + rows]
        blocks.append(
            pa.table(
                {
                    "id": pa.array(items.ids[start : start + rows].astype(str)),
                    "text": pa.array(items.texts[codes].astype(str)),
                    "text_hash": pa.array(items.hashes[codes].astype(str)),
                }
            )
        )
    return blocks


def default_workers(ray, options: RayOptions) -> int:
    """One actor per GPU share when GPUs are asked for, else one per CPU the cluster has."""
    resources = ray.cluster_resources()
    if options.gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // options.gpus_per_worker))
    return max(1, int(resources.get("CPU", 1)))
