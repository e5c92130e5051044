"""embed: texts from templates or columns, de-duplication, ids as strings, metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.embed import embed_items, join_columns, render_template, template_fields
from llmrec.encoder import Encoder
from llmrec.errors import InputError
from llmrec.vectors import read_vectors, write_vectors


@pytest.fixture(scope="module")
def bert(tiny_bert) -> Encoder:
    return Encoder.load(str(tiny_bert))


def write_items(path, rows, header=("item_id", "title", "description")):
    pd.DataFrame(rows, columns=list(header)).to_csv(path, index=False)
    return str(path)


def test_template_fields_and_rendering():
    frame = pd.DataFrame({"title": ["Phone", "Case"], "genres": ["Tech", None]})
    assert template_fields("{title}. {genres}") == ["title", "genres"]
    assert render_template(frame, "{title}. {genres}").tolist() == ["Phone. Tech", "Case."]
    with pytest.raises(InputError):
        template_fields("{title:>10}")
    with pytest.raises(InputError):
        template_fields("no fields")


def test_join_columns_skips_empty_values():
    frame = pd.DataFrame({"a": ["x", None, "", "p"], "b": ["y", "z", None, ""]})
    assert join_columns(frame, ["a", "b"]).tolist() == ["x. y", "z", "", "p"]


def test_identical_texts_share_one_vector_and_ids_stay_strings(bert, tmp_path):
    path = write_items(
        tmp_path / "items.csv",
        [
            ("007", "Phone", "A phone"),
            ("7", "Phone", "A phone"),
            ("0100", "Kettle", "Boils water"),
        ],
    )
    calls = []
    table, stats = embed_items(path, bert, on_start=calls.append)
    assert table.ids.tolist() == ["007", "7", "0100"]
    assert calls == [2] and stats.unique_texts == 2 and stats.rows == 3
    np.testing.assert_array_equal(table.vectors[0], table.vectors[1])
    assert table.extra["text_hash"][0] == table.extra["text_hash"][1]
    assert table.extra["text_hash"][0] != table.extra["text_hash"][2]


def test_vectors_equal_direct_encoding_of_rendered_text(bert, tmp_path):
    path = write_items(tmp_path / "items.csv", [("a", "Phone", "Slim"), ("b", "Case", None)])
    table, _ = embed_items(path, bert, template="{title}: {description}")
    expected = bert.encode(["Phone: Slim", "Case:"])
    np.testing.assert_allclose(table.vectors, expected, atol=1e-6)


def test_written_table_round_trips_with_metadata(bert, tmp_path, sample_items):
    table, _ = embed_items(str(sample_items), bert, text_cols=["title", "description"])
    out = tmp_path / "items.parquet"
    write_vectors(table, str(out))
    loaded = read_vectors(str(out), "items")
    np.testing.assert_array_equal(loaded.vectors, table.vectors)
    assert loaded.ids.tolist() == table.ids.tolist()
    assert loaded.meta["kind"] == "items"
    assert loaded.meta["dim"] == "32"
    assert loaded.meta["model_fingerprint"] == bert.fingerprint
    assert loaded.meta["template"] == "columns:title,description"
    assert loaded.meta["normalized"] == "true"


def test_truncated_texts_are_counted(tiny_bert, tmp_path):
    encoder = Encoder.load(str(tiny_bert), max_length=6)
    path = write_items(
        tmp_path / "items.csv", [("a", "short", None), ("b", "a much longer title " * 5, None)]
    )
    _, stats = embed_items(path, encoder)
    assert stats.truncated == 1


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "parquet", "csv.gz", "csv.zst"])
def test_every_input_format_gives_the_same_vectors(bert, tmp_path, sample_items, fmt):
    frame = pd.read_csv(sample_items, dtype=str)
    path = tmp_path / f"items.{fmt}"
    if fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)  # compression inferred from .gz / .zst
    reference, _ = embed_items(str(sample_items), bert)
    table, _ = embed_items(str(path), bert)
    assert table.ids.tolist() == reference.ids.tolist()
    np.testing.assert_allclose(table.vectors, reference.vectors, atol=1e-6)
