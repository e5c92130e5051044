"""Interaction files: user, item and an optional order column, with ids as strings.

`read_interactions` gives a pandas frame for the stages that need one; `read_encoded_interactions`
reads in record batches and dictionary-encodes ids with Arrow, so large histories stay compact.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError, flag
from ..io import tables
from ..io.tables import (
    iter_arrow,
    path_label,
    release_arrow_memory,
    string_mapper,
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
    """Interactions as a frame of `user_id`, `item_id`, `order` (+ `extra`), ids as strings:
    `read_encoded_interactions` decoded, for the few callers that want one."""
    return read_encoded_interactions(
        path, user_col=user_col, item_col=item_col, time_col=time_col, extra=extra, what=what
    ).frame()


def _time_column(path: str, names: list[str], time_col: str | None) -> str | None:
    """The column giving the order: `time_col` (which must exist), else `timestamp` if present."""
    if time_col and time_col not in names:
        raise InputError(
            f"{path_label(path)}: no column {time_col!r} (columns: {', '.join(names)}); fix {flag('time_col')}"
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

    def frame(self) -> pd.DataFrame:
        """The rows decoded: `user_id`, `item_id` (strings), `order` and the `extra` columns."""
        out = pd.DataFrame(
            {
                "user_id": self.users[self.user_codes],
                "item_id": self.items[self.item_codes],
                "order": self.order,
            }
        )
        for name, values in self.extra.items():
            out[name] = values.to_numpy()
        return out

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
    """Read interactions with their ids dictionary-encoded (int32 codes into the distinct ids).

    `order` is a float sort key from `time_col`: unix seconds, ISO dates or any numeric order
    index; without a time column (and no `timestamp` column), file order is the order.

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
        hint=f"name it with {flag('user_col')} / {flag('item_col')}",
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
    columns = {name: kept[name].to_pandas(types_mapper=string_mapper) for name in extra}
    order = (
        parse_order(kept.pop(time_col).to_pandas(types_mapper=string_mapper), path, time_col)
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
            if rows >= tables.BATCH_ROWS:
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
                f"{path_label(self.path)}: row {self.empty_row} has an empty {self.name!r}; "
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
                    f"{path_label(path)}: row {row + 1}: {column!r} value "
                    f"{text.iloc[row]!r} is not a date, unix time or number"
                )
            keys = _datetime_seconds(dates)
    missing = np.isnan(keys)
    if missing.any():
        row = int(missing.argmax())
        raise InputError(
            f"{path_label(path)}: row {row + 1} has an empty {column!r}; "
            f"fill it in or choose another {flag('time_col')}"
        )
    return keys


def _datetime_seconds(values: pd.Series) -> np.ndarray:
    dates = pd.to_datetime(values, utc=True)
    seconds = dates.astype("datetime64[ns, UTC]").astype("int64").to_numpy() / 1e9
    return np.where(dates.isna().to_numpy(), np.nan, seconds)
