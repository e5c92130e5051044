"""The vector-table contract for a folder of Parquet shards, as `embed --engine ray` writes."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.errors import InputError
from llmrec.io.vectors import VectorTable, read_meta, read_vectors, write_vectors

META = {"model_fingerprint": "abc", "pooling": "mean", "normalized": "true"}


def table(ids: list[str], seed: int, meta: dict | None = None) -> VectorTable:
    vectors = np.random.default_rng(seed).standard_normal((len(ids), 4)).astype(np.float32)
    hashes = np.array([f"h{i}" for i in ids], dtype=object)
    return VectorTable(
        "items", np.array(ids, dtype=object), vectors, meta or META, {"text_hash": hashes}
    )


def write_shards(folder, *tables: VectorTable) -> None:
    folder.mkdir()
    start = 0
    for part in tables:
        write_vectors(part, str(folder / f"part-{start:012d}.parquet"))
        start += len(part)


def test_a_folder_reads_as_its_shards_concatenated_in_name_order(tmp_path):
    first, second = table(["a", "b", "c"], 1), table(["d", "e"], 2)
    write_shards(tmp_path / "items", first, second)
    (tmp_path / "items" / ".part-x.parquet.123.tmp").write_bytes(b"half a shard")  # ignored
    whole = read_vectors(str(tmp_path / "items"), "items")
    assert whole.ids.tolist() == ["a", "b", "c", "d", "e"]
    np.testing.assert_array_equal(whole.vectors, np.vstack([first.vectors, second.vectors]))
    assert whole.extra["text_hash"].tolist() == ["ha", "hb", "hc", "hd", "he"]
    assert read_meta(str(tmp_path / "items"))["rows"] == "5"


def test_shards_of_different_models_are_refused(tmp_path):
    write_shards(tmp_path / "items", table(["a"], 1), table(["b"], 2, {**META, "pooling": "cls"}))
    with pytest.raises(InputError, match="'pooling' differs from .*part-000000000000.parquet"):
        read_vectors(str(tmp_path / "items"))


def test_an_id_in_two_shards_is_refused(tmp_path):
    write_shards(tmp_path / "items", table(["a", "b"], 1), table(["b"], 2))
    with pytest.raises(InputError, match="item_id 'b' is in two shards"):
        read_vectors(str(tmp_path / "items"))


def test_a_folder_without_shards_is_refused(tmp_path):
    (tmp_path / "items").mkdir()
    with pytest.raises(InputError, match="folder holds no .parquet shards"):
        read_vectors(str(tmp_path / "items"))
