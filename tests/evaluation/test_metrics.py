"""metrics: every function against hand-computed values, the DESIGN.md edge cases, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from llmrec.evaluation.metrics import (
    DISPLAY_NAMES,
    FUNCTIONS,
    METRICS,
    average_precision,
    hit_rate,
    ndcg,
    precision,
    recall,
    reciprocal_rank,
)


def one(func, row, n_rel, k):
    """A metric for a single user's hit row."""
    values = func(np.array([row], dtype=np.int8), np.array([n_rel]), k)
    assert values.shape == (1,)
    return float(values[0])


def all_metrics(row, n_rel, k):
    return {name: one(FUNCTIONS[name], row, n_rel, k) for name in METRICS}


def test_registry_covers_every_metric():
    assert set(FUNCTIONS) == set(METRICS) == set(DISPLAY_NAMES)
    assert FUNCTIONS["precision"] is precision
    assert FUNCTIONS["recall"] is recall
    assert FUNCTIONS["ndcg"] is ndcg
    assert FUNCTIONS["map"] is average_precision
    assert FUNCTIONS["mrr"] is reciprocal_rank
    assert FUNCTIONS["hit_rate"] is hit_rate


def test_hits_at_ranks_1_and_3_with_two_relevant():
    got = all_metrics([1, 0, 1, 0, 0], 2, 5)
    assert got["precision"] == pytest.approx(2 / 5)  # 2 hits / k=5
    assert got["recall"] == pytest.approx(1.0)  # 2 hits / |R|=2
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG over min(2,5)=2 hits = 1 + 1/log2(3)
    assert got["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert got["ndcg"] == pytest.approx(0.919720, abs=1e-6)
    # AP = (P@1 + P@3) / |R| = (1/1 + 2/3) / 2 = 5/6
    assert got["map"] == pytest.approx(5 / 6)
    assert got["mrr"] == pytest.approx(1.0)  # first hit at rank 1
    assert got["hit_rate"] == 1.0


def test_hits_at_ranks_2_and_4_with_three_relevant():
    got = all_metrics([0, 1, 0, 1, 0], 3, 5)
    assert got["precision"] == pytest.approx(2 / 5)
    assert got["recall"] == pytest.approx(2 / 3)
    # DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert got["ndcg"] == pytest.approx(dcg / idcg)
    # AP = (P@2 + P@4) / |R| = (1/2 + 2/4) / 3 = 1/3
    assert got["map"] == pytest.approx(1 / 3)
    assert got["mrr"] == pytest.approx(1 / 2)
    assert got["hit_rate"] == 1.0


def test_no_hit_at_all_scores_zero_everywhere():
    got = all_metrics([0, 0, 0, 0, 0], 3, 5)
    assert got == {name: 0.0 for name in METRICS}


def test_all_hits_score_one_everywhere():
    got = all_metrics([1, 1, 1, 1, 1], 5, 5)
    for name in METRICS:
        assert got[name] == pytest.approx(1.0), name


def test_more_relevant_than_k_uses_min_of_r_and_k_in_idcg():
    # |R| = 10 > k = 3, hits at ranks 1 and 2
    got = all_metrics([1, 1, 0, 0, 0], 10, 3)
    assert got["precision"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(2 / 10)
    # DCG = 1 + 1/log2(3); IDCG over min(10, 3) = 3 hits = 1 + 1/log2(3) + 1/log2(4)
    expected = (1 + 1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert got["ndcg"] == pytest.approx(expected)
    assert got["ndcg"] == pytest.approx(0.765361, abs=1e-6)
    # AP = (P@1 + P@2) / |R| = (1 + 1) / 10
    assert got["map"] == pytest.approx(0.2)
    assert got["mrr"] == 1.0


def test_top_k_full_of_hits_is_perfect_ndcg_even_when_r_exceeds_k():
    got = all_metrics([1, 1, 1, 0, 1], 10, 3)
    assert got["ndcg"] == pytest.approx(1.0)  # IDCG over min(10, 3) = 3 hits
    assert got["precision"] == pytest.approx(1.0)
    assert got["recall"] == pytest.approx(3 / 10)
    assert got["map"] == pytest.approx(3 / 10)  # (1 + 1 + 1) / 10


def test_short_list_padded_with_zeros_precision_still_divides_by_k():
    # a 3-item list at k = 5: padded to [0, 1, 0, 0, 0], |R| = 1
    padded = all_metrics([0, 1, 0, 0, 0], 1, 5)
    assert padded["precision"] == pytest.approx(1 / 5)  # not 1/3
    assert padded["recall"] == pytest.approx(1.0)
    assert padded["ndcg"] == pytest.approx(1 / math.log2(3))  # DCG 1/log2(3), IDCG 1
    assert padded["map"] == pytest.approx(1 / 2)  # P@2 / |R| = (1/2) / 1
    assert padded["mrr"] == pytest.approx(1 / 2)
    assert padded["hit_rate"] == 1.0
    # a hit matrix narrower than k gives the same values as the padded one
    narrow = all_metrics([0, 1, 0], 1, 5)
    assert narrow == pytest.approx(padded)
    # |R| = 4: IDCG@5 covers min(4, 5) = 4 hits, whatever the list length
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5))
    assert one(ndcg, [0, 1, 0, 0, 0], 4, 5) == pytest.approx(expected)
    assert one(ndcg, [0, 1, 0], 4, 5) == pytest.approx(expected)


def test_k_equals_one():
    # hit at rank 1, |R| = 3
    got = all_metrics([1, 0, 1, 1], 3, 1)
    assert got["precision"] == pytest.approx(1.0)
    assert got["recall"] == pytest.approx(1 / 3)
    assert got["ndcg"] == pytest.approx(1.0)  # IDCG over min(3, 1) = 1 hit
    assert got["map"] == pytest.approx(1 / 3)  # P@1 / |R|
    assert got["mrr"] == pytest.approx(1.0)
    assert got["hit_rate"] == 1.0
    # first hit at rank 2 is outside k = 1
    assert all_metrics([0, 1, 1, 1], 3, 1) == {name: 0.0 for name in METRICS}


def test_first_hit_at_last_position():
    got = all_metrics([0, 0, 0, 0, 1], 1, 5)
    assert got["precision"] == pytest.approx(1 / 5)
    assert got["recall"] == pytest.approx(1.0)
    assert got["ndcg"] == pytest.approx(1 / math.log2(6))  # DCG 1/log2(5+1), IDCG 1
    assert got["ndcg"] == pytest.approx(0.386853, abs=1e-6)
    assert got["map"] == pytest.approx(1 / 5)  # P@5 / |R|
    assert got["mrr"] == pytest.approx(1 / 5)
    assert got["hit_rate"] == 1.0


def test_reciprocal_rank_is_zero_when_the_only_hit_is_below_k():
    row = [0, 0, 0, 1, 0]
    assert one(reciprocal_rank, row, 1, 3) == 0.0
    assert one(hit_rate, row, 1, 3) == 0.0
    assert one(ndcg, row, 1, 3) == 0.0
    assert one(average_precision, row, 1, 3) == 0.0
    assert one(reciprocal_rank, row, 1, 4) == pytest.approx(1 / 4)
    assert one(reciprocal_rank, row, 1, 5) == pytest.approx(1 / 4)


def test_average_precision_divides_by_relevant_count_not_by_hits():
    # one hit at rank 1 but |R| = 4: AP = P@1 / 4 = 1/4 (dividing by hits would give 1)
    assert one(average_precision, [1, 0, 0, 0, 0], 4, 5) == pytest.approx(1 / 4)
    # hits at 1 and 3, |R| = 5: (1 + 2/3) / 5 = 1/3
    assert one(average_precision, [1, 0, 1, 0, 0], 5, 5) == pytest.approx(1 / 3)


def test_several_users_are_scored_row_by_row():
    hits = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=np.int8)
    n_relevant = np.array([2, 1, 4])
    np.testing.assert_allclose(precision(hits, n_relevant, 3), [2 / 3, 0, 1 / 3])
    np.testing.assert_allclose(recall(hits, n_relevant, 3), [1, 0, 1 / 4])
    np.testing.assert_allclose(reciprocal_rank(hits, n_relevant, 3), [1, 0, 1 / 2])
    np.testing.assert_allclose(hit_rate(hits, n_relevant, 3), [1, 0, 1])
    # AP: (1 + 2/3)/2, 0, (1/2)/4
    np.testing.assert_allclose(average_precision(hits, n_relevant, 3), [5 / 6, 0, 1 / 8])
    # NDCG: (1 + 1/log2 4)/(1 + 1/log2 3), 0, (1/log2 3)/(1 + 1/log2 3 + 1/log2 4)
    np.testing.assert_allclose(
        ndcg(hits, n_relevant, 3),
        [
            (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)),
            0,
            (1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / math.log2(4)),
        ],
    )


@pytest.mark.parametrize("name", METRICS)
def test_k_below_one_is_rejected(name):
    with pytest.raises(ValueError, match="at least 1"):
        FUNCTIONS[name](np.ones((1, 3), dtype=np.int8), np.array([1]), 0)


@st.composite
def hit_matrices(draw):
    """A random 0/1 (users × K) hit matrix and |R| >= hits in each row (and >= 1)."""
    users = draw(st.integers(1, 8))
    width = draw(st.integers(1, 12))
    hits = draw(arrays(np.int8, (users, width), elements=st.integers(0, 1)))
    extra = np.array(draw(st.lists(st.integers(0, 15), min_size=users, max_size=users)))
    n_relevant = np.maximum(hits.sum(axis=1) + extra, 1).astype(np.int64)
    return hits, n_relevant


@settings(max_examples=200, deadline=None)
@given(hit_matrices())
def test_every_metric_lies_in_unit_interval(data):
    hits, n_relevant = data
    for k in range(1, hits.shape[1] + 3):
        for name in METRICS:
            values = FUNCTIONS[name](hits, n_relevant, k)
            assert values.shape == (hits.shape[0],)
            assert np.all(values >= 0.0), (name, k)
            assert np.all(values <= 1.0 + 1e-12), (name, k)


@settings(max_examples=200, deadline=None)
@given(hit_matrices())
def test_recall_and_hit_rate_never_decrease_with_k(data):
    hits, n_relevant = data
    for name in ("recall", "hit_rate"):
        curve = np.stack(
            [FUNCTIONS[name](hits, n_relevant, k) for k in range(1, hits.shape[1] + 1)]
        )
        assert np.all(np.diff(curve, axis=0) >= -1e-12), name


@settings(max_examples=200, deadline=None)
@given(hit_matrices())
def test_precision_times_k_equals_recall_times_relevant(data):
    hits, n_relevant = data
    for k in range(1, hits.shape[1] + 1):
        np.testing.assert_allclose(
            precision(hits, n_relevant, k) * k, recall(hits, n_relevant, k) * n_relevant
        )
        # both equal the number of hits in the top k
        np.testing.assert_allclose(precision(hits, n_relevant, k) * k, hits[:, :k].sum(axis=1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 15), min_size=1, max_size=8), st.integers(1, 12))
def test_ndcg_is_one_when_hits_fill_the_top_min_r_k(n_rel, width):
    # each user's first min(|R|, K) positions are hits, the rest (if any) misses
    n_relevant = np.array(n_rel, dtype=np.int64)
    hits = (np.arange(width)[None, :] < n_relevant[:, None]).astype(np.int8)
    for k in range(1, width + 1):
        np.testing.assert_allclose(ndcg(hits, n_relevant, k), 1.0)
