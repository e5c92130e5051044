"""Item tables → the texts to embed: templates over columns, joined text columns, id checks and
text hashes (which decide what can be reused from a previous table).
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.tables import read_table, require_values
from ..options import flag

DEFAULT_TEXT_COLUMNS = ("title", "description")


def template_fields(template: str) -> list[str]:
    """Column names a `{title}. {description}` style template refers to, in order."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError(
            f"{flag('template')} {template!r}: {exc}; write fields as {{column}}"
        ) from exc
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion:
            raise InputError(
                f"{flag('template')} {template!r}: use plain {{column}} fields "
                "(no positional fields, format specs or conversions)"
            )
        fields.append(name)
    if not fields:
        raise InputError(
            f"{flag('template')} {template!r}: names no column; "
            "write e.g. '{title}. {description}'"
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
    columns = text_columns(path, list(frame.columns), template, text_cols)
    texts = render_texts(frame, template, columns)
    empty = texts == ""
    if empty.any():
        row = int(empty.to_numpy().argmax())
        raise empty_text_error(path, row + 1, id_col, frame[id_col].iloc[row], columns)
    return texts


def text_columns(
    path: str, names: list[str], template: str | None, text_cols: list[str] | None
) -> list[str]:
    """The columns a table's texts are made of; fail when the table lacks one of them."""
    if template and text_cols:
        raise InputError(f"give either {flag('template')} or {flag('text_cols')}, not both")
    if template:
        columns = template_fields(template)
    else:
        columns = text_cols or [c for c in DEFAULT_TEXT_COLUMNS if c in names]
        if not columns:
            raise InputError(
                f"{path}: no 'title' or 'description' column; say which columns "
                f"hold the text with {flag('template')} '{{name}}. {{details}}' "
                f"or {flag('text_cols')}"
            )
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(
            f"{path}: no column {missing[0]!r} (columns: {', '.join(names)}); "
            f"fix {flag('template')} / {flag('text_cols')}"
        )
    return columns


def render_texts(frame: pd.DataFrame, template: str | None, columns: list[str]) -> pd.Series:
    """Each row's text: the template filled in, else the `columns` joined."""
    return render_template(frame, template) if template else join_columns(frame, columns)


def empty_text_error(path: str, row: int, id_col: str, item: str, columns: list[str]) -> InputError:
    """The error for an item at 1-based `row` whose text came out empty."""
    return InputError(
        f"{path}: row {row} ({id_col} {item!r}) has no text in {', '.join(columns)}; "
        "fill it in or drop the row"
    )


def template_label(template: str | None, columns: list[str]) -> str:
    """What made the texts, as the `template` metadata of the vectors says it."""
    return template or "columns:" + ",".join(columns)


def check_unique_ids(ids: pd.Series, path: str, id_col: str) -> None:
    """Fail on the first id that appears twice, naming both rows."""
    pair = first_duplicate(ids)
    if pair:
        raise InputError(
            f"{path}: {id_col} {ids.iloc[pair[0]]!r} appears twice (rows {pair[0] + 1} and "
            f"{pair[1] + 1}); item ids must be unique"
        )


def first_duplicate(ids: pd.Series) -> tuple[int, int] | None:
    """Positions of the first id that appears again and of its next appearance, or None."""
    dup = ids.duplicated(keep=False)
    if not dup.any():
        return None
    rows = np.flatnonzero(dup.to_numpy())
    first = ids.iloc[rows[0]]
    return int(rows[0]), int(rows[ids.iloc[rows].to_numpy() == first][1])


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
        hint=f"pass {flag('id_col')} NAME",
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
        template_label(template, text_columns(path, list(frame.columns), template, text_cols)),
    )
