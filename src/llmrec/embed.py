"""Items → item vectors: render each item's text from its columns, encode each distinct text once."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .encoder import Encoder
from .errors import InputError
from .tables import STDIO, atomic_path, read_table, require_values
from .vectors import StoredVectors, VectorTable, parquet_options, vector_batch, vector_schema

DEFAULT_TEXT_COLUMNS = ("title", "description")
# Input rows encoded and written (as one Parquet row group) at a time: memory follows this, and
# a killed run loses at most one chunk of work (about 10 s of a CPU, less on a GPU).
CHUNK_ROWS = 4096


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


def template_fields(template: str) -> list[str]:
    """Column names a `{title}. {description}` style template refers to, in order."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError(f"--text {template!r}: {exc}; write fields as {{column}}") from exc
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion:
            raise InputError(
                f"--text {template!r}: use plain {{column}} fields "
                "(no positional fields, format specs or conversions)"
            )
        fields.append(name)
    if not fields:
        raise InputError(
            f"--text {template!r}: names no column; write e.g. '{{title}}. {{description}}'"
        )
    return fields


def render_template(frame: pd.DataFrame, template: str) -> pd.Series:
    """Fill the template for every row at once; missing values become empty strings."""
    parts = string.Formatter().parse(template)
    text = pd.Series("", index=frame.index, dtype="string")
    for literal, name, _, _ in parts:
        text = text + literal
        if name is not None:
            text = text + frame[name].astype("string").fillna("")
    return text.str.strip()


def join_columns(frame: pd.DataFrame, columns: list[str], sep: str = ". ") -> pd.Series:
    """Join the non-empty values of `columns` with `sep`, without doubled separators."""
    text = pd.Series("", index=frame.index, dtype="string")
    for name in columns:
        value = frame[name].astype("string").fillna("").str.strip()
        text = text.where(value == "", text.where(text == "", text + sep) + value)
    return text


def item_texts(
    frame: pd.DataFrame, path: str, id_col: str, template: str | None, text_cols: list[str] | None
) -> pd.Series:
    """The text to embed for each item row, from a template or a list of columns."""
    if template and text_cols:
        raise InputError("give either --text or --text-cols, not both")
    if template:
        columns = template_fields(template)
    else:
        columns = _text_columns(frame, text_cols)
        if not columns:
            raise InputError(
                f"{path}: no 'title' or 'description' column; say which columns "
                "hold the text with --text '{name}. {details}' or --text-cols"
            )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: no column {missing[0]!r} (columns: {', '.join(frame.columns)}); "
            "fix --text / --text-cols"
        )
    texts = render_template(frame, template) if template else join_columns(frame, columns)
    empty = texts == ""
    if empty.any():
        row = int(empty.to_numpy().argmax())
        raise InputError(
            f"{path}: row {row + 1} ({id_col} {frame[id_col].iloc[row]!r}) has no "
            f"text in {', '.join(columns)}; fill it in or drop the row"
        )
    return texts


def _text_columns(frame: pd.DataFrame, text_cols: list[str] | None) -> list[str]:
    return text_cols or [c for c in DEFAULT_TEXT_COLUMNS if c in frame.columns]


def check_unique_ids(ids: pd.Series, path: str, id_col: str) -> None:
    """Fail on the first id that appears twice, naming both rows."""
    dup = ids.duplicated(keep=False)
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())
        first = ids.iloc[rows[0]]
        second = rows[ids.iloc[rows].to_numpy() == first][1]
        raise InputError(
            f"{path}: {id_col} {first!r} appears twice (rows {rows[0] + 1} and "
            f"{second + 1}); item ids must be unique"
        )


def text_hashes(texts: np.ndarray) -> np.ndarray:
    """A short sha256 of each text, so a later run can tell which items changed."""
    return np.array([hashlib.sha256(t.encode()).hexdigest()[:16] for t in texts], dtype=object)


@dataclass
class ItemTexts:
    """An item table reduced to what embedding needs: ids, and each row's text as a code into
    the distinct texts (numbered in order of first appearance)."""

    path: str
    ids: np.ndarray  # object array of str, one per row
    codes: np.ndarray  # int64, one per row: index into texts
    texts: np.ndarray  # object array of the distinct texts
    hashes: np.ndarray  # object array, text_hashes(texts)
    template: str  # what made the texts, for the metadata

    def __len__(self) -> int:
        return len(self.ids)


def read_item_texts(
    path: str,
    *,
    id_col: str = "item_id",
    template: str | None = None,
    text_cols: list[str] | None = None,
) -> ItemTexts:
    """Read an item table and render each row's text; fail on missing ids, texts or columns."""
    needed = template_fields(template) if template else (text_cols or [])
    frame = read_table(
        path,
        required=[id_col],
        strings=needed or DEFAULT_TEXT_COLUMNS,
        what="item table",
        hint="pass --id-col NAME",
    )
    require_values(frame, id_col, path)
    check_unique_ids(frame[id_col], path, id_col)
    texts = item_texts(frame, path, id_col, template, text_cols)
    codes, uniques = pd.factorize(texts, sort=False)
    unique_texts = np.asarray(uniques, dtype=object)
    return ItemTexts(
        path,
        frame[id_col].to_numpy(dtype=object),
        codes.astype(np.int64),
        unique_texts,
        text_hashes(unique_texts),
        template or "columns:" + ",".join(_text_columns(frame, text_cols)),
    )


def vector_meta(encoder: Encoder, normalize: bool, template: str) -> dict[str, str]:
    """The `llmrec.*` metadata of an item table made by `encoder`."""
    return {
        **encoder.metadata(),
        "normalized": str(normalize).lower(),
        "template": template,
        "version": __version__,
    }


# Metadata keys that must match for a stored vector to stand in for encoding its text again.
REUSE_KEYS = ("model_fingerprint", "pooling", "max_length", "dtype", "normalized")


def reuse_mismatch(meta: dict[str, str], wanted: dict[str, str]) -> str | None:
    """The first setting in which stored vectors differ from what this run makes, or None."""
    for key in REUSE_KEYS:
        have, want = meta.get(key, "float32" if key == "dtype" else None), wanted.get(key)
        if have != want:
            return f"{key} {have} ≠ {want}"
    return None


@dataclass
class Chunk:
    """Vectors for input rows [start, stop), and how many distinct texts each source gave."""

    index: int
    start: int
    stop: int
    vectors: np.ndarray
    encoded: int = 0
    reused: int = 0
    resumed: bool = False
    truncated: int = 0


KnownLookup = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # hashes → (found, vectors)
FinishedLookup = Callable[[int], np.ndarray | None]  # chunk index → its vectors, if done


def chunk_bounds(n_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Input-row ranges of the chunks that are encoded and written one at a time."""
    return [(start, min(start + chunk_rows, n_rows)) for start in range(0, n_rows, chunk_rows)]


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
    items = read_item_texts(path, id_col=id_col, template=template, text_cols=text_cols)
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


class ChunkStore:
    """Finished chunks of an embed run, kept beside the output until the run succeeds.

    A run that is killed leaves `.{output}.chunks/` behind; the next run with the same input
    texts, model and settings (the folder's `key`) picks up every finished chunk instead of
    encoding it again. A folder with another key is emptied. A run that cannot lock the folder
    (another run is using it) keeps no chunks.
    """

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key
        self._lock = None

    @classmethod
    def beside(cls, output: str, key: str) -> ChunkStore | None:
        """The store for `output`, locked for this run; None where no store can be kept."""
        target = Path(os.path.realpath(output))
        if target.exists() and not target.is_file():
            return None  # a device or pipe: nothing to resume into
        store = cls(target.parent / f".{target.name}.chunks", key)
        return store if store._open() else None

    def _open(self) -> bool:
        try:
            self.folder.mkdir(exist_ok=True)
            self._lock = open(self.folder / "lock", "w")  # noqa: SIM115 (held for the run)
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            return False
        key_file = self.folder / "key"
        if not key_file.is_file() or key_file.read_text() != self.key:
            for stale in self.folder.glob("chunk-*"):
                stale.unlink(missing_ok=True)
            key_file.write_text(self.key)
        return True

    def finished(self, index: int) -> np.ndarray | None:
        """The vectors of chunk `index` if a previous run finished it."""
        try:
            return np.load(self.folder / f"chunk-{index:06d}.npy")
        except (OSError, ValueError):
            return None

    def save(self, index: int, vectors: np.ndarray) -> None:
        """Keep a chunk's vectors (written to a temp name, then renamed: never half a chunk)."""
        tmp = self.folder / f".chunk-{index:06d}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, vectors)
        os.replace(tmp, self.folder / f"chunk-{index:06d}.npy")

    def has_chunks(self) -> bool:
        return any(self.folder.glob("chunk-*.npy"))

    def close(self, remove: bool = False) -> None:
        """Release the lock; with `remove`, delete the folder (the output is complete)."""
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def run_key(items: ItemTexts, meta: dict[str, str], chunk_rows: int) -> str:
    """What a finished chunk depends on: the texts in row order, the model and its settings."""
    digest = hashlib.sha256()
    for key in REUSE_KEYS:
        digest.update(f"{key}={meta.get(key)}\n".encode())
    digest.update(f"chunk_rows={chunk_rows}\n".encode())
    digest.update("".join(items.hashes[items.codes]).encode())
    return digest.hexdigest()


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
    if chunk_rows < 1:
        raise InputError(f"--chunk-rows {chunk_rows}: must be at least 1")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")
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
