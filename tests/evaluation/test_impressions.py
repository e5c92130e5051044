"""Impression-log evaluation: MIND's AUC, MRR and nDCG per impression, CTR@k and conversion@k.

The reference is a straightforward per-impression reimplementation of MIND's evaluation
script (sklearn's roc_auc_score for AUC), with llmrec's stated tie rule: equal scores count
1/2 in AUC and place the clicked items last when ranking.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import SAMPLE, run_cli
from llmrec.evaluation.impressions import impression_metrics


def reference(labels: np.ndarray, scores: np.ndarray, k_ctr: int) -> dict[str, float]:
    """MIND's metrics of one impression, item by item; NaN where undefined."""
    order = np.lexsort((labels, -scores))  # descending score, clicked items last among ties
    ranked = labels[order].astype(float)

    def dcg(gains: np.ndarray, k: int) -> float:
        gains = gains[:k]
        return float(np.sum((2**gains - 1) / np.log2(np.arange(len(gains)) + 2)))

    cutoffs = sorted({5, 10, k_ctr})  # nDCG at MIND's 5 and 10, and at every asked k
    out = {"auc": np.nan, "mrr": np.nan, **{f"ndcg@{k}": np.nan for k in cutoffs}}
    out[f"ctr@{k_ctr}"] = np.nan
    if labels.any():
        out["mrr"] = float(np.sum(ranked / (np.arange(len(ranked)) + 1)) / np.sum(ranked))
        for k in cutoffs:
            out[f"ndcg@{k}"] = dcg(ranked, k) / dcg(np.sort(ranked)[::-1], k)
        out[f"ctr@{k_ctr}"] = float(ranked[:k_ctr].any())
    if labels.any() and not labels.all():
        finite = np.where(np.isinf(scores), -1e300, scores)  # sklearn refuses infinities
        out["auc"] = float(roc_auc_score(labels, finite))
    return out


def generated_log(seed: int, impressions: int = 400, users: int = 60, items: int = 90):
    """An impression log with tied scores, impressions without a click, all-clicked ones,
    items outside the user's list; and a rankings file (top 15 per user, tied scores)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(impressions):
        user = f"u{rng.integers(users)}"
        shown = rng.choice(items, size=rng.integers(1, 14), replace=False)
        click_rate = rng.choice([0.0, 0.3, 1.0], p=[0.15, 0.75, 0.1])
        for item in shown:
            clicked = int(rng.random() < click_rate)
            rows.append((f"imp{i}", user, f"i{item}", clicked))
    log = pd.DataFrame(rows, columns=["impression_id", "user_id", "item_id", "clicked"])
    ranked = []
    for u in range(users):
        listed = rng.choice(items, size=15, replace=False)
        scores = np.sort(rng.integers(0, 6, size=15))[::-1] / 5.0  # many ties
        ranked += [(f"u{u}", f"i{it}", s) for it, s in zip(listed, scores, strict=True)]
    rankings = pd.DataFrame(ranked, columns=["user_id", "item_id", "score"])
    return log, rankings


def reference_means(log: pd.DataFrame, rankings: pd.DataFrame, k_ctr: int) -> dict[str, float]:
    score_of = {(r.user_id, r.item_id): r.score for r in rankings.itertuples()}
    values = []
    for _, shown in log.groupby("impression_id", sort=False):
        scores = np.array(
            [
                score_of.get((u, i), -np.inf)
                for u, i in zip(shown.user_id, shown.item_id, strict=True)
            ]
        )
        values.append(reference(shown.clicked.to_numpy().astype(bool), scores, k_ctr))
    return pd.DataFrame(values).mean().to_dict()  # NaN cells are left out of each mean


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_a_per_impression_sklearn_reimplementation(seed):
    log, rankings = generated_log(seed)
    score_of = {(r.user_id, r.item_id): r.score for r in rankings.itertuples()}
    scores = np.array(
        [score_of.get(key, -np.inf) for key in zip(log.user_id, log.item_id, strict=True)]
    )
    codes = pd.factorize(log.impression_id)[0]
    ours = impression_metrics(codes, scores, log.clicked.to_numpy().astype(bool), None, [3])
    for number, (_, shown) in enumerate(log.groupby("impression_id", sort=False)):
        expected = reference(
            shown.clicked.to_numpy().astype(bool), scores[shown.index.to_numpy()], 3
        )
        for name, value in expected.items():
            if np.isnan(value):
                assert np.isnan(ours[name][number]), (name, number)
            else:
                assert ours[name][number] == pytest.approx(value, abs=1e-12), (name, number)


def test_the_json_report_equals_the_reimplementation(tmp_path):
    log, rankings = generated_log(7)
    log.to_csv(tmp_path / "log.csv", index=False)
    rankings.to_csv(tmp_path / "r.csv", index=False)
    result = run_cli(
        "evaluate", tmp_path / "r.csv", "--impressions", tmp_path / "log.csv",
        "-k", "3", "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    expected = reference_means(log, rankings, 3)
    assert set(report["metrics"]) == set(expected)
    for name, value in expected.items():
        assert report["metrics"][name] == pytest.approx(value, abs=1e-12), name
    counts = report["impressions"]
    clicks = log.groupby("impression_id").clicked.sum()
    assert counts["evaluated"] == log.impression_id.nunique()
    assert counts["with_click"] == int((clicks > 0).sum())
    assert "MIND" in report["conventions"]


def test_hand_computed_impression_with_ties():
    # shown: a b c d; scores 3, 2, 2, unranked; b (tied with c) and d clicked
    impression = np.zeros(4, dtype=np.int64)
    scores = np.array([3.0, 2.0, 2.0, -np.inf])
    clicked = np.array([False, True, False, True])
    values = impression_metrics(impression, scores, clicked, clicked, [1, 3])
    # AUC pairs (click, non-click): (b,a)=0 (b,c)=1/2 (d,a)=0 (d,c)=0 → 0.5 / 4
    assert values["auc"][0] == pytest.approx(0.125)
    # ranks with clicked items last among ties: a=1, c=2, b=3, d=4
    assert values["mrr"][0] == pytest.approx((1 / 3 + 1 / 4) / 2)
    ideal = 1 + 1 / np.log2(3)
    assert values["ndcg@5"][0] == pytest.approx((1 / np.log2(4) + 1 / np.log2(5)) / ideal)
    assert values["ctr@1"][0] == 0.0 and values["ctr@3"][0] == 1.0
    assert values["conversion@3"][0] == 1.0


def test_ctr_and_conversion_count_only_impressions_with_a_click_or_a_conversion():
    impression = np.array([0, 0, 1, 1, 2, 2])
    scores = np.array([2.0, 1.0, 2.0, 1.0, 2.0, 1.0])
    clicked = np.array([1, 0, 0, 1, 0, 0], dtype=bool)
    converted = np.array([0, 0, 0, 1, 0, 0], dtype=bool)
    values = impression_metrics(impression, scores, clicked, converted, [1])
    assert values["ctr@1"].tolist()[:2] == [1.0, 0.0] and np.isnan(values["ctr@1"][2])
    assert np.isnan(values["conversion@1"][0]) and values["conversion@1"][1] == 0.0
    assert np.isnan(values["auc"][2]) and np.isnan(values["mrr"][2])


def test_rank_column_orders_like_the_score(tmp_path):
    """A run written by `llmrec rank` (rank and score) and the same run with ranks only
    give the same report."""
    log, rankings = generated_log(3)
    rankings = rankings.sort_values(["user_id", "score"], ascending=[True, False])
    rankings["score"] = rankings.groupby("user_id").cumcount().rsub(100).astype(float)
    rankings["rank"] = rankings.groupby("user_id").cumcount() + 1
    log.to_csv(tmp_path / "log.csv", index=False)
    rankings.to_csv(tmp_path / "scored.csv", index=False)
    rankings.drop(columns="score").to_csv(tmp_path / "ranked.csv", index=False)
    result = run_cli(
        "evaluate", tmp_path / "scored.csv", tmp_path / "ranked.csv",
        "--impressions", tmp_path / "log.csv", "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    first, second = (run["metrics"] for run in report["runs"])
    assert first == second
    assert all(m["difference"] == 0 for m in report["comparisons"][0]["metrics"].values())


def test_sample_impression_log_is_scored_with_intervals(sample_embedded, tmp_path):
    items, _ = sample_embedded
    rankings = tmp_path / "r.csv"
    ranked = run_cli(
        "rank", "--user-history", SAMPLE / "interactions.csv", "--items", items, "-o", rankings
    )
    assert ranked.returncode == 0, ranked.stderr.decode()
    result = run_cli(
        "evaluate", rankings, "--impressions", SAMPLE / "impressions.csv", "-k", "5",
        "--ci", "--bootstrap", "200",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    table = result.stdout.decode()
    for name in ("AUC", "MRR", "NDCG", "CTR", "Conversion"):
        assert name in table
    assert "75 impressions of 25 users" in result.stderr.decode()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("I1,U1,P1,1\nI1,U2,P2,0\n", "row 3: impression 'I1' is shown to more than one user"),
        ("I1,U1,P1,maybe\n", "row 2: clicked is 'maybe'"),
    ],
)
def test_bad_logs_fail_in_one_line(tmp_path, rows, message):
    (tmp_path / "log.csv").write_text("impression_id,user_id,item_id,clicked\n" + rows)
    (tmp_path / "r.csv").write_text("user_id,item_id,rank\nU1,P1,1\n")
    result = run_cli("evaluate", tmp_path / "r.csv", "--impressions", tmp_path / "log.csv")
    assert result.returncode == 2
    error = result.stderr.decode().strip()
    assert message in error and len(error.splitlines()) == 1 and "log.csv" in error


def test_truth_and_impressions_are_one_or_the_other(tmp_path):
    (tmp_path / "r.csv").write_text("user_id,item_id,rank\nU1,P1,1\n")
    neither = run_cli("evaluate", tmp_path / "r.csv")
    both = run_cli(
        "evaluate", tmp_path / "r.csv", "--truth", SAMPLE / "interactions.csv",
        "--impressions", SAMPLE / "impressions.csv",
    )  # fmt: skip
    for result in (neither, both):
        assert result.returncode == 2
        assert "--truth" in result.stderr.decode() and "--impressions" in result.stderr.decode()
