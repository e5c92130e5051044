"""`llmrec embed` as one call: read the item table, load the model once, and embed on this
machine (streamed, incremental, resumable) or on a Ray cluster (a folder of Parquet shards)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..engine.ray import RayOptions
from ..errors import InputError
from ..io.vectors import VectorTable
from ..options import EmbedOptions, flag
from .encoder import Encoder
from .run import CHUNK_ROWS, EmbedRun, embed_items, embed_to_file
from .shards import plan_shards, read_items


@dataclass
class EmbedResult:
    """An embed run and the encoder that made its vectors (name, dim, dtype, device)."""

    run: EmbedRun
    encoder: Encoder
    on_ray: bool


def embed_file(
    items_path: str,
    output: str,
    options: EmbedOptions | None = None,
    *,
    ray: RayOptions | None = None,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Embed the items of `items_path` into the vector table `output` (a Parquet file, or with
    `ray` a folder of shards), as `options` say."""
    options = options or EmbedOptions()
    if ray is not None and options.reuse:
        raise InputError(
            f"{flag('engine')} ray encodes every text; "
            f"{flag('reuse')} works with {flag('engine')} local"
        )
    encoder = load_encoder(options)
    columns = {
        "id_col": options.id_col,
        "template": options.template,
        "text_cols": options.text_cols,
    }
    chunk_rows = options.chunk_rows or CHUNK_ROWS
    if ray is not None:
        from .on_ray import embed_on_ray
        from .ray_shards import embed_folder_on_ray

        settings = {
            "model": options.model,
            "options": ray,
            "chunk_rows": chunk_rows,
            "batch_size": options.batch_size,
            "normalize": options.normalize,
            "allow_download": options.allow_download,
            "allow_pickle": options.allow_pickle,
            "on_start": on_start,
            "on_batch": on_batch,
        }
        if os.path.isdir(items_path):  # read on the workers, never whole here
            plan = plan_shards(items_path, **columns)
            run = embed_folder_on_ray(plan, output, encoder, **settings)
        else:
            run = embed_on_ray(read_items(items_path, **columns), output, encoder, **settings)
    else:
        texts = read_items(items_path, **columns)
        run = embed_to_file(
            texts,
            output,
            encoder,
            reuse=options.reuse,
            reuse_output=options.reuse_output,
            chunk_rows=chunk_rows,
            batch_size=options.batch_size,
            normalize=options.normalize,
            on_start=on_start,
            on_batch=on_batch,
        )
    return EmbedResult(run, encoder, ray is not None)


def load_encoder(options: EmbedOptions) -> Encoder:
    """The encoder `options` name (model, pooling, length limit, device, dtype)."""
    return Encoder.load(
        options.model,
        pooling=options.pooling,
        max_length=options.max_length,
        device=options.device,
        dtype=options.dtype,
        allow_download=options.allow_download,
        allow_pickle=options.allow_pickle,
    )


def embed_table(
    items_path: str, options: EmbedOptions | None = None
) -> tuple[VectorTable, EmbedResult]:
    """Embed the items of `items_path` in memory (no file, no reuse, no resume): the vector
    table `embed_file` would write, bit for bit, and what the run did."""
    options = options or EmbedOptions()
    if options.reuse:
        raise InputError(f"{flag('reuse')} needs an output file to embed into")
    encoder = load_encoder(options)
    table, run = embed_items(
        items_path,
        encoder,
        id_col=options.id_col,
        template=options.template,
        text_cols=options.text_cols,
        batch_size=options.batch_size,
        normalize=options.normalize,
    )
    return table, EmbedResult(run, encoder, on_ray=False)
