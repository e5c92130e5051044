"""embed ITEMS_FOLDER/: a folder of Parquet or CSV shards is one item table, the shards taken in
file-name order, checked as one table, with errors that name the shard and the row in it."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, write_shards
from llmrec.embedding.encoder import Encoder
from llmrec.embedding.run import embed_items
from llmrec.embedding.shards import read_items
from llmrec.embedding.texts import read_item_texts
from llmrec.errors import InputError
from llmrec.io.vectors import read_meta, read_vectors


@pytest.fixture(scope="module")
def bert(tiny_bert) -> Encoder:
    return Encoder.load(str(tiny_bert))


@pytest.fixture(scope="module")
def catalog(sample_items) -> pd.DataFrame:
    return pd.read_csv(sample_items, dtype=str)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "tsv"])
@pytest.mark.parametrize("template", [None, "{title} ({category}). {description}"])
def test_a_folder_reads_as_its_shards_concatenated_in_file_name_order(
    tmp_path, catalog, fmt, template
):
    folder = write_shards(tmp_path / "items", catalog, fmt)
    catalog.to_csv(tmp_path / "all.csv", index=False)  # the shards' rows, in file-name order
    one, many = (
        read_item_texts(str(tmp_path / "all.csv"), template=template),
        read_items(folder, template=template),
    )
    assert many.path == folder and many.template == one.template
    assert many.ids.tolist() == one.ids.tolist()
    assert many.texts.tolist() == one.texts.tolist()
    assert many.codes.tolist() == one.codes.tolist()
    assert many.hashes.tolist() == one.hashes.tolist()


def test_the_local_engine_embeds_a_folder_as_the_concatenated_file(
    tmp_path, catalog, tiny_bert, bert
):
    folder = write_shards(tmp_path / "items", catalog, "parquet")
    catalog.to_csv(tmp_path / "all.csv", index=False)
    result = run_cli("embed", folder, "--model", tiny_bert, "-o", tmp_path / "v.parquet", "-q")
    assert result.returncode == 0, result.stderr.decode()
    expected, _ = embed_items(str(tmp_path / "all.csv"), bert)
    got = read_vectors(str(tmp_path / "v.parquet"))
    assert got.ids.tolist() == expected.ids.tolist()
    np.testing.assert_array_equal(got.vectors, expected.vectors)
    assert got.extra["text_hash"].tolist() == expected.extra["text_hash"].tolist()
    assert read_meta(str(tmp_path / "v.parquet"))["template"] == "columns:title,description"


def _duplicate_across(frame):
    frame.loc[27, "item_id"] = frame.loc[2, "item_id"]  # part-10 row 3, part-2 row 3


def _duplicate_within(frame):
    frame.loc[3, "item_id"] = frame.loc[0, "item_id"]


def _empty_id(frame):
    frame.loc[26, "item_id"] = None  # part-2 row 2


def _empty_text(frame):
    frame.loc[31, ["title", "description"]] = None  # part-9 row 2


@pytest.mark.parametrize(
    "spoil, message",
    [
        (
            _duplicate_across,
            "{folder}: item_id 'P003' appears twice (part-10.csv row 3 and part-2.csv row 3); "
            "item ids must be unique",
        ),
        (
            _duplicate_within,
            "{folder}: item_id 'P001' appears twice (part-10.csv rows 1 and 4); "
            "item ids must be unique",
        ),
        (
            _empty_id,
            "{folder}/part-2.csv: row 2 has an empty 'item_id'; every row needs a value there",
        ),
        (
            _empty_text,
            "{folder}/part-9.csv: row 2 (item_id 'P032') has no text in title, description; "
            "fill it in or drop the row",
        ),
    ],
)
def test_rows_of_all_shards_are_checked_as_one_table(tmp_path, catalog, spoil, message):
    frame = catalog.copy()
    spoil(frame)
    folder = write_shards(tmp_path / "items", frame, "csv")
    with pytest.raises(InputError) as error:
        read_items(folder)
    assert str(error.value) == message.format(folder=folder)


def test_every_shard_needs_the_columns_and_rows(tmp_path, catalog):
    folder = write_shards(tmp_path / "items", catalog, "csv")
    catalog.iloc[25:30].drop(columns="description").to_csv(f"{folder}/part-2.csv", index=False)
    with pytest.raises(InputError) as error:
        read_items(folder)
    assert str(error.value) == (
        f"{folder}/part-2.csv: no column 'description' (columns: item_id, title, category); "
        "fix --text / --text-cols"
    )
    with pytest.raises(InputError, match=r"part-10.csv: no column 'name' \(columns: item_id,"):
        read_items(folder, template="{name}")
    with pytest.raises(InputError, match=r"part-10.csv: no column 'sku' .*; pass --id-col NAME"):
        read_items(folder, id_col="sku")
    catalog.iloc[:0].to_csv(f"{folder}/part-2.csv", index=False)
    with pytest.raises(InputError, match=r"part-2.csv: no rows \(only a header\?\)"):
        read_items(folder)


def test_a_folder_holds_shards_of_one_format_and_nothing_else(tmp_path, catalog):
    folder = write_shards(tmp_path / "items", catalog, "csv")
    for hidden in ("_SUCCESS", ".part-10.csv.crc"):  # written by Spark and Hadoop: not shards
        open(os.path.join(folder, hidden), "w").close()
    assert len(read_items(folder)) == 60
    catalog.iloc[:3].to_parquet(f"{folder}/part-11.parquet")
    with pytest.raises(InputError, match="holds csv .part-10.csv. and parquet .part-11.parquet."):
        read_items(folder)
    os.unlink(f"{folder}/part-11.parquet")
    open(f"{folder}/notes.txt", "w").close()
    with pytest.raises(InputError, match=r"notes.txt: not a .parquet, .csv or .tsv shard"):
        read_items(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="folder holds no shards"):
        read_items(str(empty))


def test_a_bad_folder_fails_the_command_in_one_line_and_writes_nothing(
    tmp_path, catalog, tiny_bert
):
    frame = catalog.copy()
    _duplicate_across(frame)
    folder = write_shards(tmp_path / "items", frame, "parquet")
    result = run_cli("embed", folder, "--model", tiny_bert, "-o", tmp_path / "v.parquet")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"llmrec embed: error: {folder}: item_id 'P003' appears twice "
        "(part-10.parquet row 3 and part-2.parquet row 3); item ids must be unique"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items"]
