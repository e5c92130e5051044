"""Reading and writing the tables llmrec's stages exchange.

Inputs may be CSV, TSV, JSON Lines or Parquet, optionally compressed (.gz, .zst), or `-` for
stdin. Ids are always read as strings, so `00123` stays `00123`. Every output is written
atomically: a temp file in the destination folder, renamed over the target only once complete.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .errors import InputError

STDIO = "-"
ALL = "*"  # strings=ALL reads every CSV column as text, so values are copied unchanged
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
    for field in table.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise InputError(
                f"{_label(path)}: column {field.name!r} is not valid UTF-8 text; "
                "save the file as UTF-8"
            )
    if table.num_rows == 0:
        raise InputError(f"{_label(path)}: no rows (only a header?); the {what} must have rows")
    return _cast_to_string(path, table, names if strings == ALL else strings)


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
    if path != STDIO and not os.path.isfile(path):
        kind = "is a folder, not a file" if os.path.isdir(path) else "not found"
        raise InputError(f"{path}: {what} file {kind}")
    try:
        if fmt == "parquet":
            table = pq.read_table(sys.stdin.buffer if path == STDIO else path)
        elif fmt == "jsonl":
            table = pajson.read_json(_input_opener(path, compression)())
        else:
            return _read_csv(_input_opener(path, compression), fmt, strings, select)
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
    if time_col and time_col not in frame.columns:
        raise InputError(
            f"{_label(path)}: no column {time_col!r} (columns: "
            f"{', '.join(frame.columns)}); fix --time-col"
        )
    time_col = time_col or ("timestamp" if "timestamp" in frame.columns else None)
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
