"""The same inputs give the same bytes: vectors, rankings and reports, run after run."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from conftest import run_cli
from llmrec.vectors import read_vectors


def pipeline(tmp_path, name, items_csv, history, heldout, model, batch_size):
    """embed → profile → rank → evaluate into tmp_path/name; returns the four output paths."""
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    items, users = out / "items.parquet", out / "users.parquet"
    rankings, report = out / "r.csv", out / "report.json"
    steps = [
        [
            "embed",
            items_csv,
            "--model",
            model,
            "-o",
            items,
            "--batch-size",
            batch_size,
            "--no-reuse",
        ],
        ["profile", history, "--items", items, "-o", users],
        ["rank", "--users", users, "--items", items, "--user-history", history, "-o", rankings],
        ["evaluate", rankings, "--truth", heldout, "--format", "json", "-o", report],
    ]
    for step in steps:
        result = run_cli(*map(str, step))
        assert result.returncode == 0, result.stderr.decode()
    return items, users, rankings, report


def test_repeated_runs_are_byte_identical_and_batch_size_keeps_the_lists(
    tmp_path, tiny_bert, sample_items, sample_interactions
):
    history, heldout = tmp_path / "h.csv", tmp_path / "t.csv"
    split = run_cli(
        "split", sample_interactions, "--history-out", history, "--heldout-out", heldout
    )
    assert split.returncode == 0
    args = (sample_items, history, heldout, tiny_bert)
    outputs = pipeline(tmp_path, "run", *args, 64)
    first = [path.read_bytes() for path in outputs]
    saved = {
        kind: read_vectors(str(path), kind)
        for kind, path in zip(["items", "users"], outputs[:2], strict=True)
    }
    pipeline(tmp_path, "run", *args, 64)  # again, over the same paths
    for path, before in zip(outputs, first, strict=True):
        assert path.read_bytes() == before, path.name  # no timestamps or hostnames inside

    pipeline(tmp_path, "run", *args, 3)
    for kind, path in zip(["items", "users"], outputs[:2], strict=True):
        again = read_vectors(str(path), kind)
        assert again.ids.tolist() == saved[kind].ids.tolist()
        np.testing.assert_allclose(again.vectors, saved[kind].vectors, atol=1e-6)
    # rankings: the same lists; a score's 6th decimal may move with the batch's float order
    before = pd.read_csv(io.BytesIO(first[2]), dtype={"user_id": str, "item_id": str})
    after = pd.read_csv(outputs[2], dtype={"user_id": str, "item_id": str})
    columns = ["user_id", "rank", "item_id"]
    pd.testing.assert_frame_equal(after[columns], before[columns])
    np.testing.assert_allclose(after["score"], before["score"], atol=2e-6)
