"""Item tables given as a folder of shards, read the same way by both engines.

The shards are the folder's files in file-name order; their concatenation is the item table.
`plan_shards` checks every shard's columns from its footer or header (cheap: no rows are read)
and fixes which columns make the texts; `shard_texts` turns rows of one shard into ids and texts.
The local engine reads every shard here (`read_items`); `--engine ray` reads them on its workers
with the same `shard_texts`, and both report problems with the same messages, naming the shard
and the row within it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import InputError
from ..io.shards import list_shards, parquet_rows, shard_schema
from ..io.tables import (
    as_strings,
    check_columns,
    empty_value_error,
    first_empty,
    no_rows_error,
    read_arrow,
    string_mapper,
)
from ..options import flag
from .texts import (
    ItemTexts,
    empty_text_error,
    first_duplicate,
    read_item_texts,
    render_texts,
    template_label,
    text_columns,
    text_hashes,
)

WHAT = "item table"


@dataclass
class ShardPlan:
    """A folder of item-table shards: its files in name order, their format, and the columns
    that make each row's id and text."""

    folder: str
    files: list[str]
    fmt: str  # parquet, csv or tsv
    id_col: str
    template: str | None
    columns: list[str]  # the text columns

    @property
    def needed(self) -> list[str]:
        """The only columns read from each shard."""
        return list(dict.fromkeys([self.id_col, *self.columns]))

    @property
    def label(self) -> str:
        return template_label(self.template, self.columns)


def plan_shards(
    folder: str, *, id_col: str, template: str | None, text_cols: list[str] | None
) -> ShardPlan:
    """List the shards and check each has the id and text columns. Without a template or text
    columns, the first shard's title/description columns are the text, and every shard must
    have them. A Parquet shard without rows fails here; a CSV one when it is read."""
    files, fmt = list_shards(folder, WHAT)
    columns = None
    for file in files:
        schema = shard_schema(file, fmt)
        check_columns(file, schema.names, schema, [id_col], f"pass {flag('id_col')} NAME")
        fixed = text_cols or (None if template else columns)
        columns = text_columns(file, schema.names, template, fixed)
        if fmt == "parquet" and parquet_rows(file) == 0:
            raise no_rows_error(file, WHAT)
    return ShardPlan(folder, files, fmt, id_col, template, columns)


def shard_texts(table: pa.Table, plan: ShardPlan, path: str) -> tuple[pd.Series, pd.Series]:
    """Rows of the shard `path` (an Arrow table with at least `plan.needed`) → ids and texts,
    unchecked: an id may be empty, a text may be ""."""
    table = as_strings(path, table.select(plan.needed), plan.needed)
    frame = table.to_pandas(types_mapper=string_mapper)
    return frame[plan.id_col], render_texts(frame, plan.template, plan.columns)


def row_hashes(values: pd.Series | np.ndarray) -> np.ndarray:
    """A 64-bit hash of each string (nulls hash as ""), the same in every process: what a
    Ray worker sends the driver instead of the ids or texts themselves."""
    return pd.util.hash_array(pd.Series(values, dtype=object).fillna("").to_numpy(dtype=object))


class RowSpots:
    """Rows of the concatenated shards (0-based) → (shard, 1-based row within it)."""

    def __init__(self, files: list[str], counts: list[int] | np.ndarray):
        self.files = files
        self.starts = np.concatenate([[0], np.cumsum(counts)])

    def __call__(self, row: int) -> tuple[str, int]:
        shard = int(np.searchsorted(self.starts, row, side="right")) - 1
        return self.files[shard], row - int(self.starts[shard]) + 1


def duplicate_error(plan: ShardPlan, item: str, first: tuple[str, int], second: tuple[str, int]):
    """The error for an id at two rows (shard, row) of the folder."""
    (a, row_a), (b, row_b) = first, second
    where = (
        f"{os.path.basename(a)} rows {row_a} and {row_b}"
        if a == b
        else f"{os.path.basename(a)} row {row_a} and {os.path.basename(b)} row {row_b}"
    )
    return InputError(
        f"{plan.folder}: {plan.id_col} {item!r} appears twice ({where}); item ids must be unique"
    )


def read_shard_ids(plan: ShardPlan, file: str) -> pd.Series:
    """The id column of one shard (for telling a real duplicate from a hash collision)."""
    table = read_arrow(file, required=[plan.id_col], what=WHAT, select=lambda _: [plan.id_col])
    return table.to_pandas(types_mapper=string_mapper)[plan.id_col]


def read_shards(plan: ShardPlan) -> ItemTexts:
    """The local engine's read of a folder: every shard in turn, checked as one table (empty
    ids, then ids in two rows, then empty texts, each reported at its shard and row)."""
    ids, texts = [], []
    for file in plan.files:
        table = read_arrow(
            file, required=[plan.id_col], strings=plan.columns, what=WHAT,
            select=lambda _: plan.needed,
        )  # fmt: skip
        shard_ids, shard_text = shard_texts(table, plan, file)
        ids.append(shard_ids)
        texts.append(shard_text)
    spots = RowSpots(plan.files, [len(part) for part in ids])
    ids = pd.concat(ids, ignore_index=True)
    texts = pd.concat(texts, ignore_index=True)
    row = first_empty(ids)
    if row >= 0:
        raise empty_value_error(*spots(row), plan.id_col)
    pair = first_duplicate(ids)
    if pair:
        raise duplicate_error(plan, ids.iloc[pair[0]], spots(pair[0]), spots(pair[1]))
    empty = (texts == "").to_numpy(dtype=bool)
    if empty.any():
        row = int(empty.argmax())
        raise empty_text_error(*spots(row), plan.id_col, ids.iloc[row], plan.columns)
    codes, uniques = pd.factorize(texts, sort=False)
    unique_texts = np.asarray(uniques, dtype=object)
    return ItemTexts(
        plan.folder,
        ids.to_numpy(dtype=object),
        codes.astype(np.int64),
        unique_texts,
        text_hashes(unique_texts),
        plan.label,
    )


def read_items(
    path: str,
    *,
    id_col: str = "item_id",
    template: str | None = None,
    text_cols: list[str] | None = None,
) -> ItemTexts:
    """An item table (a file, or a folder of shards read in file-name order) as ItemTexts."""
    if os.path.isdir(path):
        return read_shards(plan_shards(path, id_col=id_col, template=template, text_cols=text_cols))
    return read_item_texts(path, id_col=id_col, template=template, text_cols=text_cols)


def id_digest(hashes: np.ndarray) -> int:
    """One 64-bit number for a run of `row_hashes` that changes when rows trade places: how the
    driver checks that a shard a Ray worker wrote holds the rows expected there, in order."""
    weights = np.arange(1, len(hashes) + 1, dtype=np.uint64)
    return int((hashes.astype(np.uint64) * weights).sum(dtype=np.uint64))
