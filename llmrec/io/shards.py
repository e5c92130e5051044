"""Folders of table shards: the files that make one table, in file-name order, and what can be
learned of each without reading its rows (its columns; a Parquet file's row count).

A folder holds shards of one format, Parquet or CSV/TSV, uncompressed (as Spark, Ray or pandas
write them); names starting with `.` or `_` (`_SUCCESS`, `.part-0.crc`) are not shards.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InputError
from .tables import csv_options, reading_error, table_format

SHARD_ENDINGS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv"}


def list_shards(folder: str, what: str) -> tuple[list[str], str]:
    """The shard files of `folder` sorted by file name, and their one format."""
    names = sorted(n for n in os.listdir(folder) if not n.startswith((".", "_")))
    if not names:
        raise InputError(
            f"{folder}: folder holds no shards; put the {what}'s .parquet or .csv files in it"
        )
    files = [os.path.join(folder, name) for name in names]
    formats = {}
    for file in files:
        fmt = SHARD_ENDINGS.get(os.path.splitext(file)[1].lower())
        if fmt is None or not os.path.isfile(file) or table_format(file)[1]:
            raise InputError(
                f"{file}: not a .parquet, .csv or .tsv shard; an {what} folder holds only its "
                "shards, so move it out"
            )
        formats.setdefault(fmt, file)
    if len(formats) > 1:
        (a, first), (b, second) = list(formats.items())[:2]
        raise InputError(
            f"{folder}: holds {a} ({os.path.basename(first)}) and {b} "
            f"({os.path.basename(second)}) shards; keep one format in a folder"
        )
    return files, next(iter(formats))


def shard_schema(path: str, fmt: str) -> pa.Schema:
    """A shard's columns, from a Parquet footer or a CSV header (types there are guesses from
    the first block, and only the names are meant to be used)."""
    try:
        if fmt == "parquet":
            return pq.read_schema(path)
        return pacsv.open_csv(path, parse_options=csv_options(fmt, [])[0]).schema
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as {fmt.upper()}: {reading_error(exc)}") from exc


def parquet_rows(path: str) -> int:
    """A Parquet file's row count, from its footer."""
    try:
        return pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as PARQUET: {reading_error(exc)}") from exc
