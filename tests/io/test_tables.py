"""Reading inputs: encodings and odd but valid files."""

from __future__ import annotations

import pandas as pd
import pytest

from llmrec.embedding.encoder import Encoder
from llmrec.embedding.run import embed_items
from llmrec.io.tables import read_table


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes("\ufeffitem_id,title\n00123,Phone\n".encode())
    frame = read_table(str(path), required=["item_id"])
    assert list(frame.columns) == ["item_id", "title"]
    assert frame.item_id.tolist() == ["00123"]


def test_a_megabyte_of_text_is_truncated_and_counted(tiny_bert, tmp_path):
    path = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["big", "small"], "title": ["word " * 210_000, "phone"]}).to_csv(
        path, index=False
    )
    table, stats = embed_items(str(path), Encoder.load(str(tiny_bert)))
    assert stats.truncated == 1 and table.vectors.shape == (2, 32)


@pytest.mark.parametrize("suffix", [".tsv", ".csv.gz"])
def test_ids_stay_strings_in_every_format(tmp_path, suffix):
    path = tmp_path / f"items{suffix}"
    frame = pd.DataFrame({"item_id": ["007", "7"], "title": ["a", "b"]})
    frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    assert read_table(str(path), required=["item_id"]).item_id.tolist() == ["007", "7"]
