"""Item texts → an item vector table, streamed, incremental and resumable.

Rows are encoded and written a chunk at a time (one Parquet row group each); identical texts are
encoded once; vectors whose text hash is in a previous table made by the same model and settings
are copied instead of encoded; finished chunks are kept beside the output until it is complete,
so a killed run resumes after its last finished chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..io.atomic import atomic_path
from ..io.tables import STDIO
from ..io.vectors import StoredVectors, VectorTable, parquet_options, vector_batch, vector_schema
from ..version import __version__
from .chunks import CHUNK_ROWS, REUSE_KEYS, Chunk, ChunkStore, chunk_bounds, run_key
from .encoder import Encoder
from .shards import read_items
from .texts import ItemTexts


@dataclass
class EmbedRun:
    """What an embed run did, for the closing summary."""

    rows: int
    unique_texts: int
    encoded: int
    reused: int  # distinct texts copied from a previous table
    resumed_chunks: int
    truncated: int  # texts that filled max_length tokens, so were (probably) cut
    reuse_note: str = ""  # why a previous output was not reused, if one was there


def vector_meta(encoder: Encoder, normalize: bool, template: str) -> dict[str, str]:
    """The `llmrec.*` metadata of an item table made by `encoder`."""
    return {
        **encoder.metadata(),
        "normalized": str(normalize).lower(),
        "template": template,
        "version": __version__,
    }


def reuse_mismatch(meta: dict[str, str], wanted: dict[str, str]) -> str | None:
    """The first setting in which stored vectors differ from what this run makes, or None."""
    for key in REUSE_KEYS:
        have, want = meta.get(key, "float32" if key == "dtype" else None), wanted.get(key)
        if have != want:
            return f"{key} {have} ≠ {want}"
    return None


KnownLookup = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # hashes → (found, vectors)


FinishedLookup = Callable[[int], np.ndarray | None]  # chunk index → its vectors, if done


def embed_chunks(
    items: ItemTexts,
    encoder: Encoder,
    *,
    chunk_rows: int = CHUNK_ROWS,
    batch_size: int = 64,
    normalize: bool = True,
    known: KnownLookup | None = None,
    finished: FinishedLookup | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[Chunk]:
    """Yield the vectors of the input rows chunk by chunk, in input order.

    Each distinct text is encoded once: at its first appearance, unless `known` has a vector
    for its hash (a previous run's output) or `finished` has its chunk already (a killed run's
    finished chunks). Only texts that appear again in a later chunk are kept in memory
    between chunks, so memory follows the chunk size, not the catalog size.
    """
    bounds = chunk_bounds(len(items), chunk_rows)
    last_chunk = _last_chunk_of_each_text(items.codes, chunk_rows, len(items.texts))
    carried: dict[int, np.ndarray] = {}  # text code → vector, for texts seen again later
    first_new = 0  # codes are numbered by first appearance: chunk texts ≥ this are new
    for index, (start, stop) in enumerate(bounds):
        codes = items.codes[start:stop]
        new_stop = max(first_new, int(codes.max()) + 1)
        new_codes = np.arange(first_new, new_stop)
        vectors = finished(index) if finished else None
        chunk = Chunk(index, start, stop, vectors, resumed=vectors is not None)
        if vectors is None:
            new_vectors = _vectors_for(
                items, new_codes, encoder, batch_size, normalize, known, on_batch, chunk
            )
            lookup = dict(carried)
            vectors = np.empty((stop - start, encoder.dim), dtype=np.float32)
            is_new = codes >= first_new
            vectors[is_new] = new_vectors[codes[is_new] - first_new]
            old = np.flatnonzero(~is_new)
            if len(old):
                vectors[old] = np.stack([lookup[c] for c in codes[old].tolist()])
            chunk.vectors = vectors
        elif on_batch:
            on_batch(len(new_codes))
        _carry(carried, codes, vectors, last_chunk, index)
        first_new = new_stop
        yield chunk


def _last_chunk_of_each_text(codes: np.ndarray, chunk_rows: int, n_texts: int) -> np.ndarray:
    last = np.zeros(n_texts, dtype=np.int64)
    np.maximum.at(last, codes, np.arange(len(codes)) // chunk_rows)
    return last


def _carry(carried: dict, codes: np.ndarray, vectors: np.ndarray, last_chunk, index: int) -> None:
    """Keep the vectors of this chunk's texts that a later chunk needs; forget the rest."""
    for code in [c for c, last in carried.items() if last_chunk[c] <= index]:
        del carried[code]
    later = np.flatnonzero(last_chunk[codes] > index)
    uniq, first = np.unique(codes[later], return_index=True)
    for code, row in zip(uniq.tolist(), later[first].tolist(), strict=True):
        carried[code] = vectors[row].copy()  # a copy: a view would keep the whole chunk alive


def _vectors_for(
    items, codes, encoder, batch_size, normalize, known, on_batch, chunk
) -> np.ndarray:
    """Vectors of the distinct texts `codes`: taken from `known` where it has them, else encoded."""
    out = np.empty((len(codes), encoder.dim), dtype=np.float32)
    found = np.zeros(len(codes), dtype=bool)
    if known is not None and len(codes):
        found, stored = known(items.hashes[codes])
        out[found] = stored
        chunk.reused = int(found.sum())
        if on_batch and chunk.reused:
            on_batch(chunk.reused)
    todo = np.flatnonzero(~found)
    if len(todo):
        tokens = encoder.tokenize(items.texts[codes[todo]])
        chunk.truncated = sum(len(t) >= encoder.max_length for t in tokens)
        out[todo] = encoder.encode_tokens(
            tokens, batch_size=batch_size, normalize=normalize, on_batch=on_batch
        )
        chunk.encoded = len(todo)
    return out


def embed_items(
    path: str,
    encoder: Encoder,
    *,
    id_col: str = "item_id",
    template: str | None = None,
    text_cols: list[str] | None = None,
    batch_size: int = 64,
    normalize: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[VectorTable, EmbedRun]:
    """Read an item table and embed each row's text in memory; identical texts are encoded once.

    For catalogs of any size, `embed_to_file` streams the same vectors to Parquet instead.
    `on_start(n_distinct_texts)` and `on_batch(n_done)` report progress.
    """
    items = read_items(path, id_col=id_col, template=template, text_cols=text_cols)
    if on_start:
        on_start(len(items.texts))
    chunks = list(
        embed_chunks(items, encoder, batch_size=batch_size, normalize=normalize, on_batch=on_batch)
    )
    table = VectorTable(
        kind="items",
        ids=items.ids,
        vectors=np.concatenate([c.vectors for c in chunks])
        if chunks
        else np.empty((0, encoder.dim), np.float32),
        meta=vector_meta(encoder, normalize, items.template),
        extra={"text_hash": items.hashes[items.codes]},
    )
    truncated = sum(c.truncated for c in chunks)
    return table, EmbedRun(len(items), len(items.texts), len(items.texts), 0, 0, truncated)


def previous_vectors(
    reuse: str | None, output: str, wanted: dict[str, str]
) -> tuple[StoredVectors | None, str]:
    """The table whose vectors this run may copy, and a note when the output's was passed over.

    An explicit `reuse` table must match the model and settings; the output file itself is
    used only when it does, silently skipped (with a note) when not.
    """
    if reuse:
        stored = StoredVectors.open(reuse)
        mismatch = reuse_mismatch(stored.meta, wanted)
        if mismatch:
            raise InputError(
                f"{reuse}: made with other settings ({mismatch}); its vectors can't be "
                "reused; drop --reuse to embed every text"
            )
        return stored, ""
    if output == STDIO or not os.path.isfile(output):
        return None, ""
    try:
        stored = StoredVectors.open(output)
    except InputError:
        return None, f"{output} is not an llmrec item table, so nothing was reused"
    mismatch = reuse_mismatch(stored.meta, wanted)
    if mismatch:
        return None, f"{output} was made with other settings ({mismatch}), so nothing was reused"
    return stored, ""


@dataclass
class EncodedTexts:
    """Vectors encoded ahead of the chunks, looked up by text hash."""

    index: pd.Index
    vectors: np.ndarray
    truncated: int

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        positions = self.index.get_indexer(hashes)
        return positions >= 0, self.vectors[positions[positions >= 0]]


def _encode_changed(
    items: ItemTexts, stored: StoredVectors, encoder, chunk_rows, batch_size, normalize
) -> EncodedTexts | None:
    """Encode the texts the previous table lacks in one length-sorted pass, when they are at
    most a chunk: scattered over many chunks they would be encoded in small, slow batches."""
    missing = np.flatnonzero(~stored.has(items.hashes))
    if not 0 < len(missing) <= chunk_rows:
        return None
    tokens = encoder.tokenize(items.texts[missing])
    vectors = encoder.encode_tokens(tokens, batch_size=batch_size, normalize=normalize)
    truncated = sum(len(t) >= encoder.max_length for t in tokens)
    return EncodedTexts(pd.Index(items.hashes[missing]), vectors, truncated)


def _chained(first: KnownLookup, second: EncodedTexts) -> KnownLookup:
    """A lookup that asks `first`, then `second` for what `first` lacks."""

    def lookup(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found, vectors = first(hashes)
        rest = np.flatnonzero(~found)
        found_later, later = second.lookup(hashes[rest])
        out = np.empty((len(hashes), vectors.shape[1]), dtype=np.float32)
        out[found] = vectors
        out[rest[found_later]] = later
        both = found.copy()
        both[rest[found_later]] = True
        return both, out[both]

    return lookup


def embed_to_file(
    items: ItemTexts,
    output: str,
    encoder: Encoder,
    *,
    reuse: str | None = None,
    reuse_output: bool = True,
    resume: bool = True,
    chunk_rows: int = CHUNK_ROWS,
    batch_size: int = 64,
    normalize: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EmbedRun:
    """Embed `items` into the vector table `output`, chunk by chunk, with memory bounded by the
    chunk size.

    Texts whose hash is in the previous table (`reuse`, else the existing `output` when
    `reuse_output`) and that was made by the same model and settings are copied, not encoded;
    rows of items no longer in the input are dropped with the old file. Finished chunks are kept
    beside the output while the run lasts, so a killed run restarts where it stopped (`resume`).
    """
    meta = vector_meta(encoder, normalize, items.template)
    stored, note = previous_vectors(reuse, output if reuse_output else STDIO, meta)
    store = ChunkStore.beside(output, run_key(items, meta, chunk_rows)) if resume else None
    if on_start:
        on_start(len(items.texts))
    schema = vector_schema("items", encoder.dim, meta, len(items), {"text_hash": pa.string()})
    run = EmbedRun(len(items), len(items.texts), 0, 0, 0, 0, note)
    known = stored.lookup if stored else None
    if stored is not None:  # few changed texts: encode them first, in full batches
        early = _encode_changed(items, stored, encoder, chunk_rows, batch_size, normalize)
        if early is not None:
            known = _chained(stored.lookup, early)
            run.encoded, run.truncated = len(early), early.truncated
            run.reused = -len(early)  # the chunks will count them as found
    chunks = embed_chunks(
        items,
        encoder,
        chunk_rows=chunk_rows,
        batch_size=batch_size,
        normalize=normalize,
        known=known,
        finished=store.finished if store else None,
        on_batch=on_batch,
    )
    try:
        with (
            atomic_path(output) as tmp,
            pq.ParquetWriter(tmp, schema, **parquet_options(schema)) as out,
        ):
            for chunk in chunks:
                if store and chunk.encoded and not chunk.resumed:  # reused rows stay findable
                    store.save(chunk.index, chunk.vectors)
                rows = slice(chunk.start, chunk.stop)
                hashes = {"text_hash": items.hashes[items.codes[rows]]}
                out.write_table(vector_batch(schema, items.ids[rows], chunk.vectors, hashes))
                run.encoded += chunk.encoded
                run.reused += chunk.reused
                run.resumed_chunks += chunk.resumed
                run.truncated += chunk.truncated
    except BaseException:
        if store:  # keep finished chunks for the next run; an empty folder helps nobody
            store.close(remove=not store.has_chunks())
        raise
    if store:
        store.close(remove=True)
    return run
