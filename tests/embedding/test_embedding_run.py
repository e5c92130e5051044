"""embed: texts from templates or columns, de-duplication, ids as strings, metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from llmrec.embedding.encoder import Encoder
from llmrec.embedding.run import embed_items, embed_to_file
from llmrec.embedding.texts import join_columns, read_item_texts, render_template, template_fields
from llmrec.errors import InputError
from llmrec.io.vectors import read_vectors, write_vectors


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


# ------------------------------------------------------------------ incremental and resumable


def embed_file(items, out, *args):
    """Run `llmrec embed` (tiny BERT passed by the caller in args) and return its summary line."""
    result = run_cli("embed", items, "-o", out, *args)
    assert result.returncode == 0, result.stderr.decode()
    return result.stderr.decode().strip().splitlines()[-1]


def assert_same_rows(path_a, path_b, atol=1e-6):
    a, b = read_vectors(str(path_a), "items"), read_vectors(str(path_b), "items")
    assert a.ids.tolist() == b.ids.tolist()
    assert a.extra["text_hash"].tolist() == b.extra["text_hash"].tolist()
    np.testing.assert_allclose(a.vectors, b.vectors, atol=atol)


def test_re_embedding_encodes_only_new_and_changed_texts(tiny_bert, sample_items, tmp_path):
    model = ("--model", str(tiny_bert))
    out = tmp_path / "items.parquet"
    embed_file(sample_items, out, *model)
    frame = pd.read_csv(sample_items, dtype=str)
    frame.loc[[3, 10], "title"] = ["Brand new title", "Another new title"]  # 2 changed
    frame = frame.drop(index=[20, 21])  # 2 deleted
    frame.loc[len(frame) + 100] = ["P999", "A new item", "never seen", *frame.iloc[0, 3:]]
    changed = write_items(tmp_path / "changed.csv", frame.values.tolist(), frame.columns)

    line = embed_file(changed, out, *model)
    assert "3 encoded, 56 reused from" in line, line
    embed_file(changed, tmp_path / "fresh.parquet", *model, "--no-reuse")
    assert_same_rows(out, tmp_path / "fresh.parquet")
    assert "P999" in read_vectors(str(out)).ids and "P021" not in read_vectors(str(out)).ids


@pytest.mark.extended  # make test-all: keeps make test within 8 minutes
def test_reuse_needs_the_same_model_and_settings(tiny_bert, tiny_gpt2, sample_items, tmp_path):
    out = tmp_path / "items.parquet"
    embed_file(sample_items, out, "--model", str(tiny_bert))
    # the output itself is passed over with a note when the settings differ
    line = embed_file(sample_items, out, "--model", str(tiny_bert), "--pooling", "cls")
    assert "60 encoded" in line and "other settings (pooling mean ≠ cls)" in line
    # an explicit --reuse table must match: one line, exit 2, nothing written
    result = run_cli(
        "embed", sample_items, "--model", str(tiny_gpt2), "--reuse", out, "-o", tmp_path / "g.pq"
    )
    assert result.returncode == 2
    assert result.stderr.decode().count("\n") == 1 and "model_fingerprint" in result.stderr.decode()
    assert not (tmp_path / "g.pq").exists()


def test_texts_repeated_across_chunks_are_encoded_once(bert, tmp_path):
    rows = [(f"i{n:03d}", f"text {n % 7}", "same") for n in range(50)]
    items = read_item_texts(write_items(tmp_path / "items.csv", rows))
    counted = []
    run = embed_to_file(
        items, str(tmp_path / "out.parquet"), bert, chunk_rows=8, on_batch=counted.append
    )
    assert run.encoded == 7 == sum(counted) and run.unique_texts == 7
    table = read_vectors(str(tmp_path / "out.parquet"))
    reference = bert.encode([f"text {n % 7}. same" for n in range(50)])
    np.testing.assert_allclose(table.vectors, reference, atol=1e-6)
    assert pq.ParquetFile(tmp_path / "out.parquet").num_row_groups == 7  # one per chunk


def test_an_interrupted_run_resumes_from_its_finished_chunks(bert, sample_items, tmp_path):
    items = read_item_texts(str(sample_items))
    out = tmp_path / "items.parquet"
    done = []

    def stop_in_third_chunk(n):
        done.append(n)
        if sum(done) > 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_to_file(
            items, str(out), bert, chunk_rows=10, batch_size=5, on_batch=stop_in_third_chunk
        )
    assert not out.exists()
    kept = sorted(p.name for p in (tmp_path / ".items.parquet.chunks").glob("chunk-*"))
    assert kept == ["chunk-000000.npy", "chunk-000001.npy"]

    run = embed_to_file(items, str(out), bert, chunk_rows=10, batch_size=5)
    assert run.resumed_chunks == 2 and run.encoded == 40
    assert not (tmp_path / ".items.parquet.chunks").exists()  # removed once the output is whole
    embed_to_file(items, str(tmp_path / "whole.parquet"), bert, chunk_rows=10, batch_size=5)
    assert_same_rows(out, tmp_path / "whole.parquet", atol=0)


def test_chunks_of_another_input_are_not_resumed(bert, sample_items, tmp_path):
    out = tmp_path / "items.parquet"
    chunks = tmp_path / ".items.parquet.chunks"
    chunks.mkdir()
    (chunks / "key").write_text("from another run")
    np.save(chunks / "chunk-000000.npy", np.zeros((10, bert.dim), np.float32))
    run = embed_to_file(read_item_texts(str(sample_items)), str(out), bert, chunk_rows=10)
    assert run.resumed_chunks == 0 and run.encoded == 60
    assert np.abs(read_vectors(str(out)).vectors[:10]).sum() > 0


def test_bfloat16_vectors_are_close_to_float32_with_the_bundled_model(
    sample_items, sample_embedded, tmp_path
):
    full, full_run = sample_embedded  # float32, --text "{title}. {description}"
    half = embed_file(
        sample_items, tmp_path / "bf16.parquet", "--dtype", "bfloat16",
        "--text", "{title}. {description}",
    )  # fmt: skip
    assert "float32 on" in full_run.stderr.decode() and "bfloat16 on" in half
    a, b = read_vectors(str(full)), read_vectors(str(tmp_path / "bf16.parquet"))
    assert b.meta["dtype"] == "bfloat16" and a.meta["dtype"] == "float32"
    assert (a.vectors * b.vectors).sum(axis=1).min() >= 0.999


@pytest.mark.parametrize("chunk_rows", [7, 64])  # changed texts: more than a chunk, or fewer
def test_changed_texts_spread_over_chunks_are_counted_and_placed_right(
    bert, sample_items, tmp_path, chunk_rows
):
    out = str(tmp_path / "items.parquet")
    embed_to_file(read_item_texts(str(sample_items)), out, bert, chunk_rows=chunk_rows)
    frame = pd.read_csv(sample_items, dtype=str)
    changed_rows = list(range(0, 60, 6))  # 10 texts, one in every few chunks
    frame.loc[changed_rows, "title"] = [f"changed {n}" for n in changed_rows]
    path = write_items(tmp_path / "changed.csv", frame.values.tolist(), frame.columns)
    run = embed_to_file(read_item_texts(path), out, bert, chunk_rows=chunk_rows)
    assert (run.encoded, run.reused) == (10, 50)
    fresh = str(tmp_path / "fresh.parquet")
    embed_to_file(read_item_texts(path), fresh, bert, reuse_output=False)
    assert_same_rows(out, fresh)
