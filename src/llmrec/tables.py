"""Reading and writing the tables llmrec's stages exchange.

Inputs may be CSV, TSV, JSON Lines or Parquet, optionally compressed (.gz, .zst), or `-` for
stdin. Ids are always read as strings, so `00123` stays `00123`. Every output is written
atomically: a temp file in the destination folder, renamed over the target only once complete.
"""

from __future__ import annotations

import contextlib
import glob
import io
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .errors import InputError

STDIO = "-"
ALL = "*"  # strings=ALL reads every CSV column as text, so values are copied unchanged
BATCH_ROWS = 1 << 20  # rows per block where a table is read or encoded in blocks
_COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def table_format(path: str) -> tuple[str, str | None]:
    """Return (format, compression) from a file name; stdin and unknown endings are CSV."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    compression = _COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1], "csv") if suffixes else "csv"
    return fmt, compression


def read_table(
    path: str,
    *,
    required: Iterable[str] = (),
    strings: Iterable[str] = (),
    what: str = "table",
    hint: str = "",
) -> pd.DataFrame:
    """Read a table file into a DataFrame, with `strings` columns kept as text (see read_arrow)."""
    table = read_arrow(path, required=required, strings=strings, what=what, hint=hint)
    return table.to_pandas(types_mapper=_string_mapper)


def read_arrow(
    path: str,
    *,
    required: Iterable[str] = (),
    strings: Iterable[str] = (),
    what: str = "table",
    hint: str = "",
    select: Callable[[list[str]], list[str]] | None = None,
) -> pa.Table:
    """Read a table file into Arrow, with `required` and `strings` columns as text.

    `select(column_names)` may name the only columns to read, which spares parsing the rest.
    Raises InputError naming the file when it is missing, unreadable, empty, has duplicate
    column names, or lacks one of the `required` columns (`hint` says which option to use).
    """
    strings = ALL if strings == ALL else list(dict.fromkeys([*required, *strings]))
    table, names = _read_arrow(path, strings, what, select)
    _check_columns(path, names, table.schema, required, hint)
    if table.num_rows == 0:
        raise InputError(f"{_label(path)}: no rows (only a header?); the {what} must have rows")
    return _cast_to_string(path, table, names if strings == ALL else strings)


def iter_arrow(
    path: str,
    *,
    required: Iterable[str] = (),
    what: str = "table",
    hint: str = "",
    select: Callable[[list[str]], list[str]] | None = None,
) -> Iterator[pa.Table]:
    """read_arrow (with `required` columns as text) in blocks of rows, so that a large file is
    never whole in memory: Parquet files BATCH_ROWS at a time; other inputs in one block (CSV
    types are inferred from the whole file, so it cannot be read in blocks)."""
    if path == STDIO or table_format(path)[0] != "parquet":
        yield read_arrow(path, required=required, what=what, hint=hint, select=select)
        return
    _check_file(path, what)
    try:
        parquet = pq.ParquetFile(path, pre_buffer=False)
        names = parquet.schema_arrow.names
        wanted = names
        if select and len(set(names)) == len(names):
            wanted = [n for n in select(names) if n in names]
        fields = [field for field in parquet.schema_arrow if field.name in wanted]
        _check_columns(path, names, pa.schema(fields), required, hint)
        if parquet.metadata.num_rows == 0:
            raise InputError(f"{path}: no rows (only a header?); the {what} must have rows")
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
            yield _cast_to_string(path, pa.Table.from_batches([batch]), required)
    except InputError:
        raise
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as PARQUET: {_first_line(exc)}") from exc


def _check_columns(
    path: str, names: list[str], schema: pa.Schema, required: Iterable[str], hint: str
) -> None:
    """Fail on duplicate column names, a missing `required` column or a non-UTF-8 column."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(
            f"{_label(path)}: column name {dupes[0]!r} appears more than once; "
            "rename the columns so each is unique"
        )
    for col in required:
        if col not in names:
            listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise InputError(
                f"{_label(path)}: no column {col!r} (columns: {listed})"
                + (f"; {hint}" if hint else "")
            )
    for field in schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise InputError(
                f"{_label(path)}: column {field.name!r} is not valid UTF-8 text; "
                "save the file as UTF-8"
            )


def require_values(frame: pd.DataFrame, column: str, path: str) -> None:
    """Fail with the first row (1-based, header excluded) where `column` is empty."""
    values = frame[column]
    empty = values.isna() | (values.str.strip() == "")
    if empty.any():
        row = int(empty.to_numpy().argmax()) + 1
        raise InputError(
            f"{_label(path)}: row {row} has an empty {column!r}; every row needs a value there"
        )


def _label(path: str) -> str:
    return "<stdin>" if path == STDIO else path


def _string_mapper(dtype: pa.DataType):
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return pd.StringDtype()
    return None


def _read_arrow(
    path: str, strings: list[str] | str, what: str, select=None
) -> tuple[pa.Table, list[str]]:
    """Read the file and all its column names; any parse or decoding failure is an InputError."""
    fmt, compression = table_format(path)
    _check_file(path, what)
    try:
        if fmt == "parquet":
            table = pq.read_table(sys.stdin.buffer if path == STDIO else path)
        elif fmt == "jsonl":
            table = pajson.read_json(_input_opener(path, compression)())
        else:
            opener = _input_opener(path, compression)
            table, names = _read_csv(opener, fmt, strings, select)
            if table.column_names[-1:] == names[-1:]:
                _check_last_quote(path, opener, table)
            return table, names
        names = table.schema.names
        if select and len(set(names)) == len(names):
            table = table.select([n for n in select(names) if n in names])
        return table, names
    except InputError:
        raise
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:  # UnicodeError included
        raise InputError(
            f"{_label(path)}: cannot read as {fmt.upper()}: {_first_line(exc)}"
        ) from exc


def _check_file(path: str, what: str) -> None:
    if path != STDIO and not os.path.isfile(path):
        kind = "is a folder, not a file" if os.path.isdir(path) else "not found"
        raise InputError(f"{path}: {what} file {kind}")


def _read_csv(
    open_source: Callable[[], pa.NativeFile], fmt: str, strings, select=None
) -> tuple[pa.Table, list[str]]:
    parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
    names = None
    if strings == ALL or select:
        names = pacsv.open_csv(open_source(), parse_options=parse).schema.names
    if strings == ALL:
        strings = names
    wanted = None
    if select and len(set(names)) == len(names):
        wanted = [n for n in select(names) if n in names]
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in strings},
        strings_can_be_null=True,
        include_columns=wanted,
    )
    table = pacsv.read_csv(open_source(), parse_options=parse, convert_options=convert)
    return table, names or table.schema.names


def _check_last_quote(path: str, open_source: Callable[[], pa.NativeFile], table: pa.Table) -> None:
    """Fail on a quote left open at the end of the file, which the CSV parser accepts silently.

    An open quote in the last column swallows the rest of the file into the last row's last
    value; the raw file then ends with that quote and value instead of a closing quote. (An open
    quote in an earlier column already fails with a column-count error.)
    """
    if table.num_rows == 0 or table.num_columns == 0:
        return
    value = table.column(table.num_columns - 1)[-1].as_py()
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a quoted number is still inferred as a number
    if not isinstance(value, str) or not value:
        return
    opened = ('"' + value.replace('"', '""')).rstrip("\r\n").encode()
    if _tail(open_source, len(opened) + 8).rstrip(b"\r\n").endswith(opened):
        raise InputError(
            f"{_label(path)}: row {table.num_rows} opens a quote that is never closed; "
            'close it (a quote inside a quoted value is written "")'
        )


def _tail(open_source: Callable[[], pa.NativeFile], size: int) -> bytes:
    """The last `size` bytes of the (decompressed) input: a seek where the stream allows one,
    otherwise a pass through it in 1 MiB blocks."""
    with open_source() as stream:
        if stream.seekable():
            stream.seek(max(0, stream.size() - size))
            return stream.read()
        tail = b""
        while block := stream.read(1 << 20):
            tail = (tail + block)[-size:]
        return tail


def _input_opener(path: str, compression: str | None) -> Callable[[], pa.NativeFile]:
    """A function opening the input afresh each call; stdin is read once and kept."""
    if path == STDIO:
        data = pa.py_buffer(sys.stdin.buffer.read())
        return lambda: pa.input_stream(pa.BufferReader(data), compression=compression)
    return lambda: pa.input_stream(path, compression=compression)


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, UnicodeError):
        return "not valid UTF-8 text; save the file as UTF-8"
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    if "invalid UTF8" in message:
        return f"{message}; save the file as UTF-8"
    if message == "Empty CSV file":
        return "the file is empty"
    return message[:300]


def _cast_to_string(path: str, table: pa.Table, columns: Iterable[str]) -> pa.Table:
    """Cast id and text columns to strings; nested values (lists, structs) are refused."""
    for name in columns:
        if name not in table.column_names:
            continue
        i = table.column_names.index(name)
        column = table.column(i)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            continue
        if pa.types.is_nested(column.type):
            raise InputError(
                f"{_label(path)}: column {name!r} holds nested values ({column.type}); "
                "ids and texts must be plain values"
            )
        table = table.set_column(i, name, column.cast(pa.string()))
    return table


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temps(target: Path) -> None:
    """Delete temp files that killed runs left beside `target` (their process is gone).

    Temp names carry the writer's pid, so a run still writing (here, concurrently) is left alone.
    """
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = leftover.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            if leftover.is_dir():  # a staged folder of shards (cluster.staged_folder)
                shutil.rmtree(leftover, ignore_errors=True)
                continue
            with contextlib.suppress(OSError):
                leftover.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds.

    A killed or failed run therefore never leaves a half-written file under the output name.
    Devices and named pipes (`/dev/null`, a FIFO) are written in place; a symlink's target is
    replaced, not the link.
    """
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the output")
    if target.exists() and not target.is_file():  # a device, pipe or socket: nothing to replace
        yield str(target)
        return
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"{path}: output folder {str(folder)!r} does not exist")
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def open_output(path: str) -> Iterator[io.TextIOBase]:
    """Open a text output: stdout for `-`, else an atomically replaced file."""
    if path == STDIO:
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        yield handle


def write_frame(frame: pd.DataFrame, path: str) -> None:
    """Write a DataFrame atomically in the format named by `path`'s ending (CSV for `-`)."""
    fmt, compression = table_format(path)
    if fmt == "parquet":
        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        return
    if path == STDIO:
        frame.to_csv(sys.stdout, index=False, sep="\t" if fmt == "tsv" else ",")
        return
    with atomic_path(path) as tmp:
        if fmt == "jsonl":
            frame.to_json(
                tmp, orient="records", lines=True, force_ascii=False, compression=compression
            )
        else:
            frame.to_csv(
                tmp, index=False, sep="\t" if fmt == "tsv" else ",", compression=compression
            )


def read_interactions(
    path: str,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = None,
    extra: Iterable[str] = (),
    what: str = "history",
) -> pd.DataFrame:
    """Read interactions as columns `user_id`, `item_id`, `order` (+ `extra`), ids as strings.

    `order` is a float sort key from `time_col`: unix seconds, ISO dates or any numeric order
    index. Without a time column (and no `timestamp` column), file order is the order.
    """
    frame = read_table(
        path,
        required=[user_col, item_col, *extra],
        what=what,
        hint="name it with --user-col / --item-col",
    )
    time_col = _time_column(path, list(frame.columns), time_col)
    require_values(frame, user_col, path)
    require_values(frame, item_col, path)
    out = pd.DataFrame({"user_id": frame[user_col], "item_id": frame[item_col]})
    out["order"] = (
        parse_order(frame[time_col], path, time_col)
        if time_col
        else np.arange(len(frame), dtype=np.float64)
    )
    for name in extra:
        out[name] = frame[name]
    return out


def _time_column(path: str, names: list[str], time_col: str | None) -> str | None:
    """The column giving the order: `time_col` (which must exist), else `timestamp` if present."""
    if time_col and time_col not in names:
        raise InputError(
            f"{_label(path)}: no column {time_col!r} (columns: {', '.join(names)}); fix --time-col"
        )
    return time_col or ("timestamp" if "timestamp" in names else None)


@dataclass
class EncodedInteractions:
    """Interactions with dictionary-encoded ids: per row an int32 code into the distinct ids.

    Ten million rows then cost two int32 arrays and each distinct id once, instead of two
    columns of ten million Python strings.
    """

    user_codes: np.ndarray  # int32 per row, into `users`
    users: np.ndarray  # distinct user ids (object array of str)
    item_codes: np.ndarray  # int32 per row, into `items`
    items: np.ndarray  # distinct item ids (object array of str)
    order: np.ndarray  # float64 per row: the sort key (see read_interactions)
    extra: dict[str, pd.Series]  # the `extra` columns asked for, as read

    def __len__(self) -> int:
        return len(self.order)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, extra: Iterable[str] = ()) -> EncodedInteractions:
        """Encode a frame of `user_id`, `item_id`, `order` (+ `extra`), as read_interactions gives."""
        user_codes, users = pd.factorize(frame["user_id"], use_na_sentinel=False)
        item_codes, items = pd.factorize(frame["item_id"], use_na_sentinel=False)
        return cls(
            user_codes.astype(np.int32),
            np.asarray(users, dtype=object),
            item_codes.astype(np.int32),
            np.asarray(items, dtype=object),
            frame["order"].to_numpy(dtype=np.float64),
            {name: frame[name] for name in extra},
        )


def read_encoded_interactions(
    path: str,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = None,
    extra: Iterable[str] = (),
    what: str = "history",
) -> EncodedInteractions:
    """read_interactions for large histories: the same checks and order, ids dictionary-encoded.

    Only the id, time and `extra` columns are parsed (CSV) or read (Parquet, a block of rows
    at a time, so that its id columns are never whole in memory as text).
    """
    extra = list(extra)
    names: list[str] = []

    def select(columns: list[str]) -> list[str]:
        names.extend(columns)
        time = time_col or ("timestamp" if "timestamp" in columns else None)
        return list(dict.fromkeys([user_col, item_col, *([time] if time else []), *extra]))

    release_arrow_memory()  # what an earlier read (e.g. of the item table) left in the pool
    blocks = iter_arrow(
        path,
        required=[user_col, item_col, *extra],
        what=what,
        hint="name it with --user-col / --item-col",
        select=select,
    )
    first = next(blocks)
    time_col = _time_column(path, names or first.column_names, time_col)
    users, items = _IdCodes(path, user_col), _IdCodes(path, item_col)
    blocks = itertools.chain([first], blocks)
    del first
    kept = _encode_blocks(blocks, users, items, [time_col, *extra])
    user_codes, user_ids = users.result()  # fails on an empty id, users first
    item_codes, item_ids = items.result()
    columns = {name: kept[name].to_pandas(types_mapper=_string_mapper) for name in extra}
    order = (
        parse_order(kept.pop(time_col).to_pandas(types_mapper=_string_mapper), path, time_col)
        if time_col
        else np.arange(users.rows, dtype=np.float64)
    )
    del kept
    encoded = EncodedInteractions(user_codes, user_ids, item_codes, item_ids, order, columns)
    release_arrow_memory()  # now that no Arrow buffer is left
    return encoded


def _encode_blocks(
    blocks: Iterable[pa.Table], users: _IdCodes, items: _IdCodes, keep: list[str | None]
) -> dict[str, pa.ChunkedArray]:
    """Feed each block's ids to `users` and `items`; return the `keep` columns whole."""
    kept: dict[str, list[pa.Array]] = {name: [] for name in dict.fromkeys(keep) if name}
    for block in blocks:
        users.add(block.column(users.name))
        items.add(block.column(items.name))
        for name, chunks in kept.items():
            chunks.extend(block.column(name).chunks)
    return {name: pa.chunked_array(chunks) for name, chunks in kept.items()}


def release_arrow_memory() -> None:
    """Hand the pages Arrow's allocator keeps after freeing back to the OS (a few ms).

    Otherwise they stay resident while numpy, which does not reuse them, allocates its own.
    """
    pa.default_memory_pool().release_unused()


class _IdCodes:
    """Dictionary-encodes an id column block by block: int32 codes into the distinct ids,
    numbered in order of first appearance. `result` fails like require_values on an empty id."""

    def __init__(self, path: str, name: str):
        self.path, self.name = path, name
        self.distinct: pa.Array | None = None
        self.parts: list[np.ndarray] = []
        self.rows = 0
        self.empty_row: int | None = None  # the first row (1-based) with an empty id

    def add(self, column: pa.ChunkedArray) -> None:
        """Encode the next rows, about BATCH_ROWS at a time: CSV comes in many small chunks,
        and each block costs a look-up of every id seen so far."""
        block: list[pa.Array] = []
        rows = 0
        for chunk in column.chunks:
            block.append(chunk)
            rows += len(chunk)
            if rows >= BATCH_ROWS:
                self._add(pa.concat_arrays(block) if len(block) > 1 else block[0])
                block, rows = [], 0
        if block:
            self._add(pa.concat_arrays(block) if len(block) > 1 else block[0])

    def _add(self, chunk: pa.Array) -> None:
        encoded = chunk.dictionary_encode(null_encoding="encode")  # nulls: an entry of their own
        local, seen = encoded.dictionary, self.distinct
        fresh = local
        if seen is not None:  # nulls match nulls, so a null seen before is not fresh either
            fresh = local.filter(pc.invert(pc.is_in(local, value_set=seen)))
        self.distinct = fresh if seen is None else pa.concat_arrays([seen, fresh])
        position = pc.index_in(local, value_set=self.distinct).to_numpy()
        codes = position[encoded.indices.to_numpy()]  # a numpy copy, not Arrow's memory
        if self.empty_row is None and pc.any(_is_empty(fresh)).as_py():
            empty = _is_empty(self.distinct).to_numpy(zero_copy_only=False)
            self.empty_row = self.rows + int(np.flatnonzero(empty[codes])[0]) + 1
        self.parts.append(codes)
        self.rows += len(codes)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(int32 code per row, the distinct ids as an object array of str)."""
        if self.empty_row is not None:
            raise InputError(
                f"{_label(self.path)}: row {self.empty_row} has an empty {self.name!r}; "
                "every row needs a value there"
            )
        codes = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
        self.parts = []
        return codes, self.distinct.to_numpy(zero_copy_only=False)


def _is_empty(ids: pa.Array) -> pa.Array:
    """Per id: null or only whitespace (as require_values judges it)."""
    return pc.fill_null(pc.equal(pc.utf8_trim_whitespace(ids), ""), True)


def parse_order(values: pd.Series, path: str, column: str) -> np.ndarray:
    """Turn a time column into float sort keys: numbers as they are, dates as unix seconds."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        keys = values.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_datetime64_any_dtype(values):
        keys = _datetime_seconds(values)
    else:
        text = values.astype("string")
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.notna().sum() == text.notna().sum():
            keys = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            dates = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
            bad = dates.isna() & text.notna()
            if bad.any():
                row = int(bad.to_numpy().argmax())
                raise InputError(
                    f"{_label(path)}: row {row + 1}: {column!r} value "
                    f"{text.iloc[row]!r} is not a date, unix time or number"
                )
            keys = _datetime_seconds(dates)
    missing = np.isnan(keys)
    if missing.any():
        row = int(missing.argmax())
        raise InputError(
            f"{_label(path)}: row {row + 1} has an empty {column!r}; "
            "fill it in or choose another --time-col"
        )
    return keys


def _datetime_seconds(values: pd.Series) -> np.ndarray:
    dates = pd.to_datetime(values, utc=True)
    seconds = dates.astype("datetime64[ns, UTC]").astype("int64").to_numpy() / 1e9
    return np.where(dates.isna().to_numpy(), np.nan, seconds)
