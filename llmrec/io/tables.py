"""Reading and writing the tables llmrec's stages exchange.

Inputs may be CSV, TSV, JSON Lines or Parquet, optionally compressed (.gz, .zst), or `-` for
stdin. Ids are always read as strings, so `00123` stays `00123`. Every problem with an input is
an `InputError` that names the file, the column or row, and what to do.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from ..errors import InputError, first_line
from .atomic import STDIO, atomic_path

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
    return table.to_pandas(types_mapper=string_mapper)


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
    check_columns(path, names, table.schema, required, hint)
    if table.num_rows == 0:
        raise no_rows_error(path, what)
    return as_strings(path, table, names if strings == ALL else strings)


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
        check_columns(path, names, pa.schema(fields), required, hint)
        if parquet.metadata.num_rows == 0:
            raise no_rows_error(path, what)
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
            yield as_strings(path, pa.Table.from_batches([batch]), required)
    except InputError:
        raise
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as PARQUET: {reading_error(exc)}") from exc


def check_columns(
    path: str, names: list[str], schema: pa.Schema, required: Iterable[str], hint: str
) -> None:
    """Fail on duplicate column names, a missing `required` column or a non-UTF-8 column."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(
            f"{path_label(path)}: column name {dupes[0]!r} appears more than once; "
            "rename the columns so each is unique"
        )
    for col in required:
        if col not in names:
            listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise InputError(
                f"{path_label(path)}: no column {col!r} (columns: {listed})"
                + (f"; {hint}" if hint else "")
            )
    for field in schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise InputError(
                f"{path_label(path)}: column {field.name!r} is not valid UTF-8 text; "
                "save the file as UTF-8"
            )


def require_values(frame: pd.DataFrame, column: str, path: str) -> None:
    """Fail with the first row (1-based, header excluded) where `column` is empty."""
    row = first_empty(frame[column])
    if row >= 0:
        raise empty_value_error(path, row + 1, column)


def first_empty(values: pd.Series) -> int:
    """The position of the first null or blank value of a string column, or -1."""
    empty = (values.isna() | (values.str.strip() == "")).to_numpy(dtype=bool)
    return int(empty.argmax()) if empty.any() else -1


def empty_value_error(path: str, row: int, column: str) -> InputError:
    """The error for an empty value at 1-based `row` (header excluded) of `column`."""
    return InputError(
        f"{path_label(path)}: row {row} has an empty {column!r}; every row needs a value there"
    )


def no_rows_error(path: str, what: str) -> InputError:
    return InputError(f"{path_label(path)}: no rows (only a header?); the {what} must have rows")


def path_label(path: str) -> str:
    return "<stdin>" if path == STDIO else path


def string_mapper(dtype: pa.DataType):
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
            f"{path_label(path)}: cannot read as {fmt.upper()}: {reading_error(exc)}"
        ) from exc


def _check_file(path: str, what: str) -> None:
    if path != STDIO and not os.path.isfile(path):
        kind = "is a folder, not a file" if os.path.isdir(path) else "not found"
        raise InputError(f"{path}: {what} file {kind}")


def _read_csv(
    open_source: Callable[[], pa.NativeFile], fmt: str, strings, select=None
) -> tuple[pa.Table, list[str]]:
    names = None
    if strings == ALL or select:
        parse = csv_options(fmt, [])[0]
        names = pacsv.open_csv(open_source(), parse_options=parse).schema.names
    if strings == ALL:
        strings = names
    wanted = None
    if select and len(set(names)) == len(names):
        wanted = [n for n in select(names) if n in names]
    parse, convert = csv_options(fmt, strings, wanted)
    table = pacsv.read_csv(open_source(), parse_options=parse, convert_options=convert)
    return table, names or table.schema.names


def csv_options(
    fmt: str, strings: Iterable[str], include: list[str] | None = None
) -> tuple[pacsv.ParseOptions, pacsv.ConvertOptions]:
    """How a CSV or TSV input is parsed: `strings` columns as text (empty values as nulls), and
    only the `include` columns when given. Whoever reads a CSV for llmrec reads it so."""
    parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in strings},
        strings_can_be_null=True,
        include_columns=include,
    )
    return parse, convert


def _check_last_quote(path: str, open_source: Callable[[], pa.NativeFile], table: pa.Table) -> None:
    """Fail on a quote left open at the end of the file, which the CSV parser accepts silently.

    An open quote in the last column swallows the rest of the file into the last row's last
    value; the raw file then ends with that quote and value instead of a closing quote. (An open
    quote in an earlier column already fails with a column-count error.)
    """
    if table.num_rows == 0 or table.num_columns == 0:
        return
    value = table.column(table.num_columns - 1)[-1].as_py()
    _check_open_quote(path, open_source, value, table.num_rows)


def check_last_quote(path: str, value: object, rows: int) -> None:
    """`_check_last_quote` for a CSV file parsed elsewhere (on a Ray worker): `value` is its
    last row's last value as parsed, and `rows` its number of rows."""
    _check_open_quote(path, _input_opener(path, table_format(path)[1]), value, rows)


def _check_open_quote(
    path: str, open_source: Callable[[], pa.NativeFile], value: object, rows: int
) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a quoted number is still inferred as a number
    if not isinstance(value, str) or not value:
        return
    opened = ('"' + value.replace('"', '""')).rstrip("\r\n").encode()
    if _tail(open_source, len(opened) + 8).rstrip(b"\r\n").endswith(opened):
        raise InputError(
            f"{path_label(path)}: row {rows} opens a quote that is never closed; "
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


def reading_error(exc: BaseException) -> str:
    """What a reader's exception says, in one line, with the fix where one is known."""
    if isinstance(exc, UnicodeError):
        return "not valid UTF-8 text; save the file as UTF-8"
    message = first_line(exc)
    if "invalid UTF8" in message:
        return f"{message}; save the file as UTF-8"
    if message == "Empty CSV file":
        return "the file is empty"
    return message[:300]


def as_strings(path: str, table: pa.Table, columns: Iterable[str]) -> pa.Table:
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
                f"{path_label(path)}: column {name!r} holds nested values ({column.type}); "
                "ids and texts must be plain values"
            )
        table = table.set_column(i, name, column.cast(pa.string()))
    return table


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


def release_arrow_memory() -> None:
    """Hand the pages Arrow's allocator keeps after freeing back to the OS (a few ms).

    Otherwise they stay resident while numpy, which does not reuse them, allocates its own.
    """
    pa.default_memory_pool().release_unused()
