"""rank: exact top-k with deterministic ties, seen-item exclusion, blocking, CSV output."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrec.errors import InputError
from llmrec.rank import (
    Seen,
    block_rows,
    popularity_scorer,
    random_scorer,
    rank_blocks,
    top_k,
    vector_scorer,
    write_rankings,
)
from llmrec.vectors import VectorTable, check_compatible


def reference_top_k(scores: np.ndarray, k: int):
    """Order every row by (score desc, column asc) with a plain stable sort."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 30), st.integers(1, 35), st.integers(0, 2**31 - 1))
def test_top_k_equals_stable_sort_even_with_many_ties(rows, cols, k, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(rows, cols)).astype(np.float32)  # ties everywhere
    kk = min(k, cols)
    values, columns = top_k(torch.from_numpy(scores), kk)
    expected_values, expected_columns = reference_top_k(scores, kk)
    np.testing.assert_array_equal(columns.numpy(), expected_columns)
    np.testing.assert_array_equal(values.numpy(), expected_values)


def table(kind, ids, vectors, fingerprint="f", dim=None):
    vectors = np.asarray(vectors, dtype=np.float32)
    meta = {"model": "m", "model_fingerprint": fingerprint, "dim": str(dim or vectors.shape[1])}
    return VectorTable(kind, np.array(ids, dtype=object), vectors, meta)


def ranking(users, items, k, seen=None, budget=None):
    kwargs = {"seen": seen} if seen else {}
    if budget:
        kwargs["budget_bytes"] = budget
    scorer = vector_scorer(users, items)
    return pd.concat(rank_blocks(users.ids, items.ids, scorer, k, **kwargs), ignore_index=True)


def random_tables(n_users=23, n_items=40, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    users = table("users", [f"u{i:02d}" for i in range(n_users)], rng.normal(size=(n_users, dim)))
    items = table("items", [f"i{i:02d}" for i in range(n_items)], rng.normal(size=(n_items, dim)))
    return users, items


def test_rankings_are_the_exact_top_k_by_dot_product():
    users, items = random_tables()
    result = ranking(users, items, 5)
    scores = users.vectors @ items.vectors.T
    for u, user in enumerate(users.ids):
        rows = result[result.user_id == user]
        assert rows["rank"].tolist() == [1, 2, 3, 4, 5]
        assert rows.item_id.tolist() == [items.ids[j] for j in np.argsort(-scores[u])[:5]]
        np.testing.assert_allclose(rows.score, np.sort(scores[u])[::-1][:5], rtol=1e-5)


def test_block_size_does_not_change_the_result():
    users, items = random_tables()
    whole = ranking(users, items, 7)
    assert block_rows(len(items), 8 * len(items)) == 1
    one_user_blocks = ranking(users, items, 7, budget=8 * len(items))
    pd.testing.assert_frame_equal(whole, one_user_blocks)


def test_seen_items_are_excluded():
    users, items = random_tables(n_users=3, n_items=5)
    seen = Seen(np.array([0, 2, 2, 5]), np.array([0, 3, 0, 1, 2]))
    result = ranking(users, items, 5, seen=seen)
    assert set(result[result.user_id == "u00"].item_id) == {"i01", "i02", "i04"}
    assert len(result[result.user_id == "u01"]) == 5
    assert set(result[result.user_id == "u02"].item_id) == {"i03", "i04"}


def test_k_larger_than_catalog_returns_every_item_once():
    users, items = random_tables(n_users=2, n_items=4)
    result = ranking(users, items, 50)
    assert result.groupby("user_id").item_id.nunique().tolist() == [4, 4]


def test_ties_break_by_item_id():
    users = table("users", ["u"], [[1.0, 0.0]])
    items = table("items", ["a", "b", "c", "d"], [[1, 0], [0, 1], [1, 0], [1, 0]])
    assert ranking(users, items, 3).item_id.tolist() == ["a", "c", "d"]


def test_k_must_be_positive():
    users, items = random_tables(2, 3)
    with pytest.raises(InputError):
        next(rank_blocks(users.ids, items.ids, vector_scorer(users, items), 0))


def test_csv_has_header_and_fixed_score_precision():
    users, items = random_tables(n_users=2, n_items=3)
    buffer = io.StringIO()
    rows = write_rankings(rank_blocks(users.ids, items.ids, vector_scorer(users, items), 2), buffer)
    lines = buffer.getvalue().splitlines()
    assert rows == 4 and lines[0] == "user_id,rank,item_id,score"
    assert all(len(line.split(",")[3].split(".")[1]) == 6 for line in lines[1:])


def test_incompatible_tables_are_refused():
    users, items = random_tables(2, 3)
    other = table("items", ["x"], [[0.0] * 6], fingerprint="g")
    with pytest.raises(InputError, match="different models"):
        check_compatible(users, other, "u.parquet", "i.parquet")
    narrow = table("items", ["x"], [[0.0] * 4])
    with pytest.raises(InputError, match="different dimensions"):
        check_compatible(users, narrow, "u.parquet", "i.parquet")
    check_compatible(users, items, "u.parquet", "i.parquet")


def test_random_scores_do_not_depend_on_blocking_and_change_with_seed():
    scorer = random_scorer(50, seed=3)
    whole = scorer(0, 10).numpy()
    np.testing.assert_array_equal(np.vstack([scorer(0, 4), scorer(4, 10)]), whole)
    assert not np.array_equal(random_scorer(50, seed=4)(0, 10).numpy(), whole)
    assert whole.min() >= 0 and whole.max() < 2**24
    # roughly uniform: every decile of the score range is used
    assert len(np.unique((whole / 2**24 * 10).astype(int))) == 10


def test_popularity_ranks_most_popular_unseen_items_first():
    ids = np.array(["u1", "u2"], dtype=object)
    items = np.array(["a", "b", "c", "d"], dtype=object)
    scorer = popularity_scorer(np.array([5, 9, 9, 1]))
    seen = Seen(np.array([0, 1, 1]), np.array([1]))
    result = pd.concat(rank_blocks(ids, items, scorer, 3, seen=seen), ignore_index=True)
    assert result[result.user_id == "u1"].item_id.tolist() == ["c", "a", "d"]
    assert result[result.user_id == "u2"].item_id.tolist() == ["b", "c", "a"]


def test_diversify_prefers_a_different_second_item():
    from llmrec.rank import diversify

    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=np.float32)
    values = torch.tensor([[0.9, 0.89, 0.5]])
    columns = torch.tensor([[0, 1, 2]])
    kept_values, kept = diversify(values, columns, vectors, 2, 0.0)
    assert kept.tolist() == [[0, 1]]  # λ = 0: relevance order
    kept_values, kept = diversify(values, columns, vectors, 2, 0.5)
    assert kept.tolist() == [[0, 2]]  # the near-duplicate of item 0 gives way
    assert kept_values.tolist() == [[pytest.approx(0.9), pytest.approx(0.5)]]


def test_diversify_skips_excluded_candidates():
    from llmrec.rank import diversify

    vectors = np.eye(3, dtype=np.float32)
    values = torch.tensor([[1.0, -torch.inf, 0.2]])
    kept_values, kept = diversify(values, torch.tensor([[0, 1, 2]]), vectors, 3, 0.7)
    assert kept.tolist()[0][:2] == [0, 2]
    assert torch.isfinite(kept_values).tolist() == [[True, True, False]]  # nothing left: dropped


def test_recent_items_keep_each_users_latest_distinct_items():
    from llmrec.profile import map_history
    from llmrec.rank import recent_items

    frame = pd.DataFrame(
        [("u", "a", 1), ("u", "b", 2), ("u", "a", 3), ("u", "c", 4), ("v", "b", 1)],
        columns=["user_id", "item_id", "order"],
    )
    history = map_history(frame, np.array(["a", "b", "c"], dtype=object))
    table = recent_items(history, np.array(["v", "x", "u"], dtype=object), 2)
    assert table.tolist() == [[1, -1], [-1, -1], [2, 0]]


def test_interests_match_each_side_of_a_two_sided_user():
    from llmrec.rank import interest_scorer

    # items: tool, tool-like, toy, toy-like, a blend of both; the user bought a tool and a toy
    vectors = np.array([[1, 0], [0.95, 0.31], [0, 1], [0.31, 0.95], [0.71, 0.71]], dtype=np.float32)
    items = table("items", ["tool", "tool2", "toy", "toy2", "mix"], vectors)
    mean_user = table("users", ["u"], [[0.71, 0.71]])
    seen = Seen(np.array([0, 2]), np.array([0, 2]))
    scorer = interest_scorer(np.array([[0, 2]]), items)
    by_interest = pd.concat(rank_blocks(mean_user.ids, items.ids, scorer, 2, seen=seen))
    by_mean = pd.concat(
        rank_blocks(mean_user.ids, items.ids, vector_scorer(mean_user, items), 1, seen=seen)
    )
    assert by_mean.item_id.tolist() == ["mix"]  # one mean vector lands between the interests
    assert set(by_interest.item_id) == {"tool2", "toy2"}  # each interest finds its neighbour
