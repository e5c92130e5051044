"""The Ray engine: embed and rank on a Ray cluster, with the same answers as on one machine.

`embed` follows Ray Data's batch-inference pattern: the item table is read and checked here,
as the local engine does, and handed to Ray Data in blocks of `chunk_rows` consecutive rows;
`map_batches` runs them through a pool of actors that each load the model once and encode with
llmrec's own `Encoder`; each actor writes its blocks as Parquet shards of the output folder,
named by their first row (`part-000000004096.parquet`), so the folder reads back in input
order. Nothing appears under the output name until every shard is written.

`rank` puts the item matrix in the object store once and scores user blocks as Ray tasks with
llmrec's own tiled top-k. A block is a whole number of the local engine's tiles, so every
matrix product has the shape it has locally and the rankings are byte-identical.

A text's vector does not depend on its batch (see `encoder`), so shards equal the local file
row for row. Ray is optional (`pip install 'llmrec[ray]'`) and imported only here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .embed import EmbedRun, ItemTexts, vector_meta
from .encoder import Encoder
from .errors import InputError, LlmrecError
from .tables import _umask, remove_stale_temps
from .vectors import VectorTable, write_vectors

INSTALL_HINT = "--engine ray needs Ray: pip install 'llmrec[ray]'"
ENGINES = ("local", "ray")
# CPU share of an encoding actor: a little under one core, so that an actor per core still
# leaves Ray Data room to schedule its own tasks (a pool holding every CPU can stall it).
ACTOR_CPUS = 0.9


@dataclass
class RayOptions:
    """Where and how wide to run: a cluster address (None starts a local Ray on this machine,
    bound to 127.0.0.1), the number of encoding actors, and GPUs per actor."""

    address: str | None = None
    concurrency: int | None = None
    gpus_per_worker: float = 0.0


def require_ray():
    """Import Ray, or fail in one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise LlmrecError(INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[object]:
    """Connect to the cluster at `options.address` (or start a local one) for the block; a
    session started here is shut down after it, one already running is left alone."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        _start(ray, options.address)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        yield ray
    finally:
        if started:
            ray.shutdown()


def _start(ray, address: str | None) -> None:
    settings = {
        # workers load MKL before llmrec can set this for them (see llmrec/__init__.py)
        "runtime_env": {"env_vars": {"MKL_CBWR": os.environ["MKL_CBWR"]}},
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    try:
        if address:
            ray.init(address=address, **settings)
        else:  # a private local cluster; no traffic leaves the machine
            ray.init(_node_ip_address="127.0.0.1", **settings)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray"
        raise LlmrecError(f"--ray-address: cannot start or reach {where}: {_first(exc)}") from exc


# --- embed --------------------------------------------------------------------------------


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
    if chunk_rows < 1:
        raise InputError(f"--chunk-rows {chunk_rows}: must be at least 1")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")
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
        written = _run(lambda: list(_reported(shards.iter_rows(), on_batch)))
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


@contextlib.contextmanager
def staged_folder(output: str) -> Iterator[str]:
    """Yield an empty temp folder beside `output`; on success it replaces `output` (a file or a
    folder), on failure it is removed. Temp folders of killed runs are removed first."""
    target = Path(os.path.realpath(output))
    if not target.parent.is_dir():
        raise InputError(f"{output}: output folder {str(target.parent)!r} does not exist")
    remove_stale_temps(target)
    prefix = f".{target.name}.{os.getpid()}."
    staging = tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        old = None
        if target.exists():  # a folder can't be renamed over: move the previous one aside
            old = tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent)
            os.replace(target, Path(old) / "previous")
        os.replace(staging, target)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --- rank ---------------------------------------------------------------------------------


def top_k_on_ray(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    *,
    seen=None,
    budget_bytes: int,
    fast: bool = False,
    options: RayOptions,
) -> Iterator[tuple[int, int, object, object]]:
    """`rank.vector_top_k` with user blocks as Ray tasks: the same (start, stop, values,
    columns) blocks, in user order, computed with the same tile shapes."""
    import torch

    from .rank import fast_fetch, tile_shape

    fetch = min(fast_fetch(k), len(items)) if fast else k
    itemsize = 2 if fast else 4
    candidate_bytes = 64 + (4 * items.shape[1] if fast else 0)
    tile_rows, _ = tile_shape(len(items), fetch, budget_bytes, itemsize, candidate_bytes)
    with ray_session(options) as ray:
        workers = options.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
        tiles = max(1, -(-len(users) // (tile_rows * 4 * workers)))  # ≥ 4 tasks per worker
        step = tile_rows * tiles
        task = ray.remote(num_cpus=1)(_rank_block)
        items_ref = ray.put(items)
        pending: deque = deque()
        starts = iter(range(0, len(users), step))
        for start in starts:
            pending.append(
                _submit(task, users, items_ref, start, step, k, seen, budget_bytes, fast)
            )
            if len(pending) < 2 * workers:
                continue
            yield _collect(ray, pending.popleft(), torch)
        while pending:
            yield _collect(ray, pending.popleft(), torch)


def _submit(task, users, items_ref, start, step, k, seen, budget_bytes, fast):
    from .rank import Seen

    stop = min(start + step, len(users))
    block_seen = None
    if seen is not None:
        lo, hi = seen.indptr[start], seen.indptr[stop]
        block_seen = Seen(seen.indptr[start : stop + 1] - lo, seen.indices[lo:hi])
    ref = task.remote(users[start:stop], items_ref, k, block_seen, budget_bytes, fast)
    return start, stop, ref


def _collect(ray, pending, torch):
    start, stop, ref = pending
    values, columns = _run(lambda: ray.get(ref))
    # ray.get gives read-only arrays; the copies are small (users × k)
    return start, stop, torch.from_numpy(values.copy()), torch.from_numpy(columns.copy())


def _rank_block(users, items, k, seen, budget_bytes, fast):
    """One Ray task: the top-k of a block of users, as numpy arrays."""
    import torch

    from .rank import vector_top_k

    torch.set_num_threads(1)
    with warnings.catch_warnings():  # the shared item matrix is read-only; nothing writes it
        warnings.simplefilter("ignore", UserWarning)
        parts = list(vector_top_k(users, items, k, seen=seen, budget_bytes=budget_bytes, fast=fast))
    values = torch.cat([values for _, _, values, _ in parts]).numpy()
    columns = torch.cat([columns for _, _, _, columns in parts]).numpy()
    return values, columns


def _run(call):
    """Run a Ray call, turning an llmrec error raised on a worker back into itself."""
    ray = require_ray()
    try:
        return call()
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None)
        while cause is not None and not isinstance(cause, LlmrecError):
            cause = getattr(cause, "cause", None) or cause.__cause__
        if isinstance(cause, LlmrecError):
            raise cause from None
        raise LlmrecError(f"Ray failed: {_first(exc)}") from exc


def _first(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
