"""`llmrec embed`."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..options import EmbedOptions
from .common import (
    Concurrency,
    Debug,
    Engine,
    Quiet,
    RayAddress,
    check_outputs,
    command,
    progress_of,
    ray_options,
    say,
    split_list,
)


@command
def embed(
    items: Annotated[
        str,
        typer.Argument(
            metavar="ITEMS",
            help="Item table: .csv .tsv .jsonl .parquet (.gz/.zst), or -; or a folder of "
            ".parquet or .csv shards, read in file-name order (on the workers with --engine ray).",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            rich_help_panel="Input and output",
            help="Vector table to write (Parquet).",
        ),
    ] = "items.parquet",
    id_col: Annotated[
        str, typer.Option(rich_help_panel="Input and output", help="Column holding item ids.")
    ] = "item_id",
    text: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Input and output",
            help="Text template over columns, e.g. '{title}. {description}'.",
        ),
    ] = None,
    text_cols: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Input and output",
            help="Comma-separated text columns, joined with '. '.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Model",
            help="Local Hugging Face model folder [default: bundled all-MiniLM-L6-v2].",
        ),
    ] = None,
    allow_download: Annotated[
        bool,
        typer.Option(
            "--allow-download",
            rich_help_panel="Model",
            help="Allow fetching --model from the Hugging Face hub.",
        ),
    ] = False,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            rich_help_panel="Model",
            help="Allow pickle (.bin) weights; only for folders you trust.",
        ),
    ] = False,
    pooling: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Model", help="mean | cls | last [default: the model's, else mean]."
        ),
    ] = None,
    max_length: Annotated[
        int,
        typer.Option(rich_help_panel="Model", help="Tokens per text; longer texts are truncated."),
    ] = 256,
    batch_size: Annotated[
        int, typer.Option(rich_help_panel="Model", help="Texts per forward pass.")
    ] = 64,
    normalize: Annotated[
        bool, typer.Option(rich_help_panel="Model", help="L2-normalise vectors.")
    ] = True,
    device: Annotated[
        str, typer.Option(rich_help_panel="Model", help="auto | cpu | cuda | mps.")
    ] = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            rich_help_panel="Model",
            help="float32 | bfloat16 | float16: 16-bit runs about 2–3× faster on GPUs and "
            "CPUs with BF16 support (cosine to float32 ≈ 0.9999).",
        ),
    ] = "float32",
    reuse: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Reuse and resume",
            help="Previous item table: unchanged texts keep its vectors, only new or changed "
            "ones are encoded [default: OUTPUT, when it exists and the model matches].",
        ),
    ] = None,
    no_reuse: Annotated[
        bool,
        typer.Option(
            "--no-reuse",
            rich_help_panel="Reuse and resume",
            help="Encode every text, ignoring a previous OUTPUT.",
        ),
    ] = False,
    chunk_rows: Annotated[
        int | None,
        typer.Option(
            rich_help_panel="Reuse and resume",
            help="Items encoded and written at a time (one Parquet row group); memory follows "
            "it, and a killed run resumes from the last finished chunk [default: 4096].",
        ),
    ] = None,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    num_gpus_per_worker: Annotated[
        float,
        typer.Option(
            rich_help_panel="Engine",
            help="With --engine ray: GPUs per encoding worker (0: CPU only).",
        ),
    ] = 0.0,
    concurrency: Concurrency = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Embed item texts into a vector table with a language model.

    Re-running into the same OUTPUT encodes only new or changed texts; a killed run restarts
    from its finished chunks.
    """
    from ..api import embed as embed_items

    options = EmbedOptions(
        id_col=id_col,
        template=text,
        text_cols=split_list(text_cols),
        model=model,
        pooling=pooling,
        max_length=max_length,
        batch_size=batch_size,
        normalize=normalize,
        device=device,
        dtype=dtype,
        reuse=reuse,
        reuse_output=not no_reuse,
        chunk_rows=chunk_rows,
        allow_download=allow_download,
        allow_pickle=allow_pickle,
    )
    check_outputs([output], [items] + ([reuse] if reuse else []))
    ray = ray_options(engine, ray_address, concurrency, num_gpus_per_worker)
    started = time.perf_counter()
    with progress_of(quiet, "embedding") as shown:
        result = embed_items(items, output, options, ray=ray, progress=shown)
    run, encoder = result.run, result.encoder
    sources = [f"{run.encoded:,} encoded"]
    if run.reused:
        sources.append(f"{run.reused:,} reused from {reuse or output}")
    if run.resumed_chunks:
        plural = "s" if run.resumed_chunks != 1 else ""
        sources.append(f"{run.resumed_chunks:,} finished chunk{plural} resumed")
    say(
        quiet,
        f"llmrec embed: {run.rows:,} items ({run.unique_texts:,} distinct texts: "
        f"{', '.join(sources)}; {run.truncated:,} truncated at {encoder.max_length} tokens) "
        f"→ {output}, dim {encoder.dim}, {encoder.name} {encoder.dtype} "
        f"{'on Ray (Parquet shards)' if result.on_ray else 'on ' + encoder.device}, "
        f"{time.perf_counter() - started:.1f} s"
        + (f"; {run.reuse_note}" if run.reuse_note else ""),
    )
