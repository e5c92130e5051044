"""In-memory tables where a stage reads files: each pandas DataFrame, Arrow table or vector
table is written to a temporary Parquet file for the run, so the Python API and the command
line read their inputs through the same code (and the same checks)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Union

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import LlmrecError
from .vectors import VectorTable, write_vectors

Source = Union[str, pd.DataFrame, pa.Table, VectorTable]  # noqa: UP007 (a runtime alias)


@contextlib.contextmanager
def as_files(**sources: Source | None) -> Iterator[dict[str, str | None]]:
    """Yield each source's path: a file path as given, an in-memory table written to a temporary
    Parquet file named after its argument. An error that names such a file names the argument
    instead ("the history DataFrame: no column 'user_id' …"). The files go when the block ends."""
    kept = {name: source for name, source in sources.items() if isinstance(source, str | None)}
    if len(kept) == len(sources):
        yield kept
        return
    with tempfile.TemporaryDirectory(prefix="llmrec-tables-") as folder:
        paths, labels = dict(kept), {}
        for name, source in sources.items():
            if name in kept:
                continue
            path = str(Path(folder) / f"{name}.parquet")
            write_source(source, path)
            paths[name], labels[path] = path, f"the {name} {type(source).__name__}"
        try:
            yield paths
        except LlmrecError as exc:
            message = str(exc)
            for path, label in labels.items():
                message = message.replace(path, label)
            raise type(exc)(message) from None


def write_source(source: pd.DataFrame | pa.Table | VectorTable, path: str) -> None:
    """Write an in-memory table as Parquet (a vector table with its metadata)."""
    if isinstance(source, VectorTable):
        write_vectors(source, path)
    elif isinstance(source, pd.DataFrame):
        pq.write_table(pa.Table.from_pandas(source, preserve_index=False), path)
    elif isinstance(source, pa.Table):
        pq.write_table(source, path)
    else:
        raise TypeError(f"expected a path, DataFrame, pyarrow Table or VectorTable, not {source!r}")
