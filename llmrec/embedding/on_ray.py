"""`embed --engine ray`: Ray Data's batch-inference pattern over llmrec's own encoder.

The item table is read and checked here, as the local engine does, and handed to Ray Data in
blocks of consecutive rows; `map_batches` runs them through a pool of actors that each load the
model once; each actor writes its blocks as Parquet shards of the output folder, named by their
first row (`part-000000004096.parquet`), so the folder reads back in input order. Nothing appears
under the output name until every shard is written. A text's vector does not depend on its batch
(see `encoder`), so shards equal the local file row for row.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..engine.ray import RayOptions, ray_call, ray_session
from ..errors import LlmrecError
from ..io.atomic import staged_folder
from ..io.vectors import VectorTable, write_vectors
from .encoder import Encoder
from .run import EmbedRun, vector_meta
from .texts import ItemTexts

# CPU share of an encoding actor: a little under one core, so that an actor per core still
# leaves Ray Data room to schedule its own tasks (a pool holding every CPU can stall it).
ACTOR_CPUS = 0.9


class EncodeShards:
    """A Ray Data actor: loads the model once, then encodes blocks and writes them as shards."""

    def __init__(self, model: str | None, load: dict, meta: dict, folder: str, batch_size: int):
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

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.column("row").to_numpy()
        runs = np.split(np.arange(len(rows)), np.flatnonzero(np.diff(rows) != 1) + 1)
        names, counts, truncated = [], [], []
        for run in runs:  # normally one: a batch is one block of consecutive rows
            part = batch.take(pa.array(run))
            tokens = self.encoder.tokenize(part.column("text").to_pylist())
            vectors = self.encoder.encode_tokens(
                tokens, batch_size=self.batch_size, normalize=self.normalize
            )
            name = f"part-{int(rows[run[0]]):012d}.parquet"
            table = VectorTable(
                "items",
                part.column("id").to_numpy(zero_copy_only=False),
                vectors,
                self.meta,
                {"text_hash": part.column("text_hash").to_numpy(zero_copy_only=False)},
            )
            write_vectors(table, str(self.folder / name))
            names.append(name)
            counts.append(len(run))
            truncated.append(sum(len(t) >= self.encoder.max_length for t in tokens))
        return pa.table({"shard": names, "rows": counts, "truncated": truncated})


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
    load = {
        "pooling": encoder.pooling,
        "max_length": encoder.max_length,
        "dtype": encoder.dtype,
        "device": "cuda" if options.gpus_per_worker else "cpu",
        "allow_download": allow_download,
        "allow_pickle": allow_pickle,
    }
    with ray_session(options) as ray, staged_folder(output) as folder:
        workers = options.concurrency or _default_workers(ray, options)
        blocks = _blocks(items, _block_rows(len(items), workers, chunk_rows))
        workers = min(workers, len(blocks))
        with warnings.catch_warnings():
            # max_restarts=0 (a failed actor fails the run; a rerun starts clean) is how Ray
            # Data's actor pool documents turning restarts off, but it goes through the
            # catch-all remote-args parameter, which warns as deprecated in this Ray.
            warnings.simplefilter("ignore", DeprecationWarning)
            shards = ray.data.from_arrow(blocks).map_batches(
                EncodeShards,
                fn_constructor_kwargs={
                    "model": model,
                    "load": load,
                    "meta": meta,
                    "folder": folder,
                    "batch_size": batch_size,
                },
                batch_size=None,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=ACTOR_CPUS,
                num_gpus=options.gpus_per_worker or None,
                max_restarts=0,
            )
        if on_start:
            on_start(len(items))
        written = ray_call(lambda: list(_reported(shards.iter_rows(), on_batch)))
    return EmbedRun(
        rows=sum(row["rows"] for row in written),
        unique_texts=len(items.texts),
        encoded=sum(row["rows"] for row in written),
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


def _block_rows(n_items: int, workers: int, chunk_rows: int) -> int:
    """Rows per block: at most chunk_rows, and small enough for 4 blocks per worker, so that
    a catalog of a few blocks does not leave workers idle while one finishes the last."""
    return max(1, min(chunk_rows, -(-n_items // (4 * workers))))


def _blocks(items: ItemTexts, rows: int) -> list[pa.Table]:
    """The items as Arrow tables of `rows` consecutive rows: position, id, text, text hash."""
    blocks = []
    for start in range(0, len(items), rows):
        codes = items.codes[start : start + rows]
        blocks.append(
            pa.table(
                {
                    "row": pa.array(np.arange(start, start + len(codes))),
                    "id": pa.array(items.ids[start : start + rows].astype(str)),
                    "text": pa.array(items.texts[codes].astype(str)),
                    "text_hash": pa.array(items.hashes[codes].astype(str)),
                }
            )
        )
    return blocks


def _default_workers(ray, options: RayOptions) -> int:
    """One actor per GPU share when GPUs are asked for, else one per CPU the cluster has."""
    resources = ray.cluster_resources()
    if options.gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // options.gpus_per_worker))
    return max(1, int(resources.get("CPU", 1)))
