"""Beyond-accuracy measures against hand-computed values, and through `llmrec evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from llmrec.evaluation.beyond_accuracy import (
    Context,
    coverage,
    gini,
    intra_list_diversity,
    list_mean,
)
from llmrec.evaluation.scoring import evaluate_runs
from llmrec.io.vectors import VectorTable, write_vectors


def test_gini_of_even_and_concentrated_counts():
    assert gini(np.array([3, 3, 3, 3])) == 0
    # one of four items gets everything: (2·4 − 4 − 1)·c / (4·c) = 3/4
    assert gini(np.array([0, 0, 0, 7])) == pytest.approx(0.75)
    # counts 1, 2, 3 sorted: ((−2)·1 + 0·2 + 2·3) / (3·6) = 4/18
    assert gini(np.array([3, 1, 2])) == pytest.approx(4 / 18)


def test_coverage_is_the_share_of_catalog_items_recommended():
    assert coverage(np.array([0, 2, 0, 1])) == 0.5


def test_list_mean_skips_padding_and_is_nan_for_empty_lists():
    values = np.array([1.0, 2.0, 4.0])
    lists = np.array([[0, 2, -1], [-1, -1, -1], [1, 1, 2]])
    means = list_mean(values, lists, 2)
    assert means[0] == 2.5 and np.isnan(means[1]) and means[2] == 2.0


def test_intra_list_diversity_of_orthogonal_and_identical_items():
    vectors = np.array([[1, 0], [0, 1], [2, 0]], dtype=np.float32)
    rows = np.array([0, 1, 2])
    lists = np.array([[0, 1], [0, 2], [0, -1]])
    ild = intra_list_diversity(lists, rows, vectors, 2)
    assert ild[0] == pytest.approx(1.0)  # orthogonal: cosine 0
    assert ild[1] == pytest.approx(0.0)  # same direction: cosine 1
    assert np.isnan(ild[2])  # fewer than two items


def test_intra_list_diversity_equals_pairwise_loop():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 5)).astype(np.float32)
    lists = np.array([rng.permutation(30)[:6] for _ in range(20)])
    ild = intra_list_diversity(lists, np.arange(30), vectors, 6)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for u, items in enumerate(lists):
        cos = [unit[a] @ unit[b] for i, a in enumerate(items) for b in items[i + 1 :]]
        assert ild[u] == pytest.approx(1 - np.mean(cos), abs=1e-5)


def test_context_measures_novelty_popularity_coverage_through_evaluate():
    # training: 4 users; item a seen by 3 of them, b by 1, c by none
    train = pd.DataFrame({"user_id": ["1", "2", "3", "4"], "item_id": ["a", "a", "a", "b"]})
    counts = train.groupby("item_id").size()
    context = Context(np.array(["a", "b", "c", "d"], dtype=object), counts, 4, None)
    run = pd.DataFrame({"user_id": ["x", "x", "y"], "item_id": ["a", "c", "b"], "rank": [1, 2, 1]})
    truth = pd.DataFrame({"user_id": ["x", "y"], "item_id": ["c", "z"]})
    result = evaluate_runs(truth, [run], [2], context=context)[0]
    info = {"a": -np.log2(4 / 5), "b": -np.log2(2 / 5), "c": -np.log2(1 / 5)}
    novelty = result.per_user["novelty@2"]
    assert novelty["x"] == pytest.approx((info["a"] + info["c"]) / 2)
    assert novelty["y"] == pytest.approx(info["b"])
    assert result.per_user["popularity@2"].tolist() == [1.5, 1.0]
    assert result.catalog["coverage@2"] == 0.75
    # recommendation counts over the catalog: a 1, b 1, c 1, d 0
    assert result.catalog["gini@2"] == pytest.approx(gini(np.array([1, 1, 1, 0])))


def test_cli_reports_beyond_accuracy_with_items_and_train(tmp_path):
    vectors = np.eye(3, dtype=np.float32)
    write_vectors(
        VectorTable(
            "items",
            np.array(["a", "b", "c"], dtype=object),
            vectors,
            {"model": "m", "model_fingerprint": "f"},
        ),
        str(tmp_path / "i.parquet"),
    )
    (tmp_path / "train.csv").write_text("user_id,item_id\n1,a\n2,a\n3,b\n")
    (tmp_path / "truth.csv").write_text("user_id,item_id\n1,b\n2,c\n")
    (tmp_path / "run.csv").write_text("user_id,rank,item_id\n1,1,b\n1,2,c\n2,1,b\n2,2,c\n")
    result = run_cli(
        "evaluate",
        tmp_path / "run.csv",
        "--truth",
        tmp_path / "truth.csv",
        "--items",
        tmp_path / "i.parquet",
        "--train",
        tmp_path / "train.csv",
        "-k",
        "2",
        "-f",
        "json",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["coverage@2"] == pytest.approx(2 / 3)
    assert metrics["ild@2"] == pytest.approx(1.0)
    assert "novelty@2" in metrics and "popularity@2" in metrics
