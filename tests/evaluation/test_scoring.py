"""evaluate: user accounting, duplicates, list ordering, string ids, -k parsing, cross-check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrec.errors import InputError
from llmrec.evaluation.metrics import METRICS
from llmrec.evaluation.scoring import evaluate_files, evaluate_frames, parse_ks


def write(path: Path, text: str) -> str:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return str(path)


def files(tmp_path: Path, rankings: str, truth: str) -> tuple[str, str]:
    return write(tmp_path / "rankings.csv", rankings), write(tmp_path / "truth.csv", truth)


TRUTH = """
user_id,item_id
A,i1
A,i2
B,i3
C,i4
"""

RANKINGS = """
user_id,rank,item_id,score
A,1,i1,0.9
A,2,x,0.8
A,3,i2,0.7
B,1,i3,0.9
D,1,i9,0.9
"""


def test_missing_users_score_zero_and_ignored_users_are_counted(tmp_path):
    result = evaluate_files(*files(tmp_path, RANKINGS, TRUTH), [1, 3])
    assert result.users_evaluated == 3  # A, B, C: every truth user
    assert result.users_missing == 1  # C: in the truth, not ranked
    assert result.users_ignored == 1  # D: ranked, not in the truth
    assert list(result.per_user.index) == ["A", "B", "C"]
    assert (result.per_user.loc["C"] == 0.0).all()
    summary = result.summary()
    # recall@3: A 2/2, B 1/1, C 0 -> mean 2/3
    assert summary["recall@3"] == pytest.approx(2 / 3)
    assert summary["hit_rate@3"] == pytest.approx(2 / 3)
    # precision@3: A 2/3, B 1/3, C 0 -> 1/3
    assert summary["precision@3"] == pytest.approx(1 / 3)
    # ndcg@3: A (1 + 1/log2 4)/(1 + 1/log2 3), B 1, C 0
    ndcg_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert summary["ndcg@3"] == pytest.approx((ndcg_a + 1) / 3)
    # map@3: A (1 + 2/3)/2, B 1, C 0
    assert summary["map@3"] == pytest.approx((5 / 6 + 1) / 3)
    # recall@1: A 1/2, B 1, C 0
    assert summary["recall@1"] == pytest.approx(1.5 / 3)
    assert result.sources == {
        "rankings": str(tmp_path / "rankings.csv"),
        "truth": str(tmp_path / "truth.csv"),
    }


def test_ranked_users_without_truth_do_not_change_the_means(tmp_path):
    with_d = evaluate_files(*files(tmp_path, RANKINGS, TRUTH), [1, 3])
    other = tmp_path / "other"
    other.mkdir()
    without_d = evaluate_files(*files(other, RANKINGS.replace("D,1,i9,0.9\n", ""), TRUTH), [1, 3])
    assert without_d.users_ignored == 0
    assert with_d.users_ignored == 1
    assert with_d.summary() == pytest.approx(without_d.summary())
    pd.testing.assert_frame_equal(with_d.per_user, without_d.per_user)


def test_every_metric_and_k_has_a_column(tmp_path):
    result = evaluate_files(*files(tmp_path, RANKINGS, TRUTH), [1, 3])
    assert set(result.per_user.columns) == {f"{m}@{k}" for m in METRICS for k in (1, 3)}
    assert result.ks == [1, 3]


def test_duplicate_ranking_rows_keep_the_better_rank(tmp_path):
    rankings = """
user_id,rank,item_id
A,2,x
A,3,i1
A,1,i1
"""
    result = evaluate_files(*files(tmp_path, rankings, "user_id,item_id\nA,i1\nA,i2"), [1, 3])
    row = result.per_user.loc["A"]
    # kept list: i1 (rank 1), x (rank 2); the rank-3 copy of i1 is dropped
    assert row["mrr@1"] == 1.0
    assert row["precision@3"] == pytest.approx(1 / 3)  # one distinct hit, not two
    assert row["recall@3"] == pytest.approx(1 / 2)
    assert row["map@3"] == pytest.approx(1 / 2)  # P@1 / |R|


def test_duplicate_ranking_rows_by_score_keep_the_higher_score(tmp_path):
    rankings = """
user_id,item_id,score
A,i1,0.2
A,x,0.5
A,i1,0.9
"""
    result = evaluate_files(*files(tmp_path, rankings, "user_id,item_id\nA,i1\nA,i2"), [1, 3])
    row = result.per_user.loc["A"]
    assert row["mrr@3"] == 1.0  # i1 at 0.9 comes first
    assert row["precision@3"] == pytest.approx(1 / 3)
    assert row["recall@3"] == pytest.approx(1 / 2)


def test_duplicate_truth_rows_count_once(tmp_path):
    truth = "user_id,item_id\nA,i1\nA,i1\nA,i2\nA,i2\nA,i2"
    result = evaluate_files(*files(tmp_path, "user_id,rank,item_id\nA,1,i1", truth), [1, 2])
    row = result.per_user.loc["A"]
    assert row["recall@1"] == pytest.approx(1 / 2)  # |R| = 2, not 5
    assert row["map@2"] == pytest.approx(1 / 2)
    # DCG = 1; IDCG over min(2, 2) = 2 hits = 1 + 1/log2(3)
    assert row["ndcg@2"] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_evaluate_frames_drops_duplicate_rows_itself():
    """evaluate_frames is public: duplicates in the frames it is given must not count twice."""
    rankings = pd.DataFrame({"user_id": ["A", "A"], "item_id": ["i1", "i1"]})
    truth = pd.DataFrame({"user_id": ["A", "A", "A"], "item_id": ["i1", "i2", "i2"]})
    row = evaluate_frames(rankings, truth, [2]).per_user.loc["A"]
    # distinct: ranked [i1], |R| = {i1, i2} = 2 -> one hit in the top 2
    assert row["precision@2"] == pytest.approx(1 / 2)
    assert row["recall@2"] == pytest.approx(1 / 2)
    assert row["map@2"] == pytest.approx(1 / 2)


def rr(result, user: str) -> float:
    return float(result.per_user.loc[user, "mrr@5"])


def test_rank_column_orders_the_list_over_file_order_and_score(tmp_path):
    # file order c, a, b; rank order a, b, c; score order (ignored) b, a, c
    rankings = """
user_id,rank,item_id,score
A,3,c,0.5
B,2,q,0.1
A,1,a,0.6
A,2,b,0.9
B,1,p,0.2
"""
    truth = "user_id,item_id\nA,c\nB,q"
    result = evaluate_files(*files(tmp_path, rankings, truth), [5])
    assert rr(result, "A") == pytest.approx(1 / 3)
    assert rr(result, "B") == pytest.approx(1 / 2)


def test_score_orders_descending_with_ties_by_item_id(tmp_path):
    # scores: c 0.9, then a and b tie at 0.5 -> c, a, b (file order would put b before a)
    rankings = """
user_id,item_id,score
A,b,0.5
A,a,0.5
A,c,0.9
B,z,0.1
B,y,0.3
"""
    truth = "user_id,item_id\nA,b\nB,z"
    result = evaluate_files(*files(tmp_path, rankings, truth), [5])
    assert rr(result, "A") == pytest.approx(1 / 3)
    assert rr(result, "B") == pytest.approx(1 / 2)


def test_without_rank_or_score_file_order_is_the_order(tmp_path):
    # A's rows in file order c, a, b (interleaved with B's): sorting by item would give a, b, c
    rankings = """
user_id,item_id
A,c
B,y
A,a
B,x
A,b
"""
    truth = "user_id,item_id\nA,b\nB,y"
    result = evaluate_files(*files(tmp_path, rankings, truth), [5])
    assert rr(result, "A") == pytest.approx(1 / 3)
    assert rr(result, "B") == pytest.approx(1.0)


def test_non_numeric_rank_is_an_input_error(tmp_path):
    rankings, truth = files(tmp_path, "user_id,rank,item_id\nA,first,i1", "user_id,item_id\nA,i1")
    with pytest.raises(InputError, match="rank"):
        evaluate_files(rankings, truth, [5])


def test_ids_are_strings_007_does_not_match_7(tmp_path):
    rankings = """
user_id,rank,item_id
7,1,42
007,1,042
007,2,42
"""
    truth = "user_id,item_id\n007,042\n0,1"
    result = evaluate_files(*files(tmp_path, rankings, truth), [1, 2])
    assert list(result.per_user.index) == ["0", "007"]
    assert result.users_missing == 1  # "0"
    assert result.users_ignored == 1  # "7" is not "007"
    row = result.per_user.loc["007"]
    assert row["precision@2"] == pytest.approx(1 / 2)  # "042" hits, "42" does not
    assert row["mrr@1"] == 1.0


def test_parse_ks_sorts_and_dedupes():
    assert parse_ks("10,5,5") == [5, 10]
    assert parse_ks("20") == [20]
    assert parse_ks(" 3 , 1,") == [1, 3]


@pytest.mark.parametrize("text", ["0", "a", "5,-1", "", ",", "2.5"])
def test_parse_ks_rejects_bad_cutoffs(text):
    with pytest.raises(InputError, match="-k"):
        parse_ks(text)


def reference_means(ranked: dict, truth: dict, k: int) -> dict[str, float]:
    """Straightforward per-user loops over ordered, de-duplicated lists (DESIGN.md formulas)."""
    totals = dict.fromkeys(METRICS, 0.0)
    for user, relevant in truth.items():
        top = ranked.get(user, [])[:k]
        flags = [item in relevant for item in top]
        n_hits = sum(flags)
        dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(flags) if hit)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
        ap = sum(sum(flags[: i + 1]) / (i + 1) for i, hit in enumerate(flags) if hit)
        first = next((i for i, hit in enumerate(flags) if hit), None)
        totals["precision"] += n_hits / k
        totals["recall"] += n_hits / len(relevant)
        totals["ndcg"] += dcg / idcg
        totals["map"] += ap / len(relevant)
        totals["mrr"] += 0.0 if first is None else 1 / (first + 1)
        totals["hit_rate"] += 1.0 if n_hits else 0.0
    return {name: total / len(truth) for name, total in totals.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_means_match_an_independent_implementation_on_random_data(tmp_path, seed):
    rng = np.random.default_rng(seed)
    items = [f"i{j:02d}" for j in range(30)]
    ranked: dict[str, list[str]] = {}
    truth: dict[str, set[str]] = {}
    ranking_rows, truth_rows = [], []
    for u in range(60):
        user = f"u{u:03d}"
        if u < 50:  # 50 users with truth, some of them not ranked
            relevant = set(rng.choice(items, size=int(rng.integers(1, 8)), replace=False))
            truth[user] = relevant
            truth_rows += [(user, item) for item in sorted(relevant)]
        if u >= 5:  # u000..u004 are missing from the rankings; u050..u059 have no truth
            listed = list(rng.choice(items, size=int(rng.integers(0, 25)), replace=False))
            if listed:
                ranked[user] = listed
                ranking_rows += [(user, rank, item) for rank, item in enumerate(listed, 1)]
    order = rng.permutation(len(ranking_rows))  # shuffle the file: rank must reorder it
    rankings_text = "user_id,rank,item_id\n" + "\n".join(
        f"{ranking_rows[i][0]},{ranking_rows[i][1]},{ranking_rows[i][2]}" for i in order
    )
    truth_text = "user_id,item_id\n" + "\n".join(f"{u},{i}" for u, i in truth_rows)
    ks = [1, 3, 5, 10, 20]
    result = evaluate_files(*files(tmp_path, rankings_text, truth_text), ks)
    assert result.users_evaluated == 50
    assert result.users_missing == len(set(truth) - set(ranked))
    assert result.users_ignored == len(set(ranked) - set(truth))
    summary = result.summary()
    for k in ks:
        expected = reference_means(ranked, truth, k)
        for name in METRICS:
            assert summary[f"{name}@{k}"] == pytest.approx(expected[name], abs=1e-12), (name, k)


def test_rows_without_a_score_go_last_in_their_list():
    rankings = pd.DataFrame(
        {"user_id": ["u", "u", "u"], "item_id": ["a", "b", "c"], "score": [np.nan, 0.5, 0.9]}
    )
    truth = pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})
    result = evaluate_frames(rankings, truth, [1, 3])
    assert result.summary()["hit_rate@1"] == 0
    assert result.summary()["mrr@3"] == pytest.approx(1 / 3)
