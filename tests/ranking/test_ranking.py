"""rank: exact top-k with deterministic ties, seen-item exclusion, blocking, CSV output."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli
from llmrec.data.history import Seen
from llmrec.errors import InputError
from llmrec.io.vectors import VectorTable, check_compatible, write_vectors
from llmrec.options import RankOptions
from llmrec.ranking import blas_top_k, tiles, topk
from llmrec.ranking import tiles as tiles_module
from llmrec.ranking.run import rank_blocks, rank_to_file, write_rankings
from llmrec.ranking.scorers import Scorer
from llmrec.ranking.scorers.baselines import popularity_scorer, random_scorer
from llmrec.ranking.scorers.vector import VectorScorer, vector_scorer
from llmrec.ranking.tiles import torch_top_k, vector_top_k
from llmrec.ranking.topk import block_rows, top_k


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
    from llmrec.ranking.diversify import diversify

    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=np.float32)
    values = np.array([[0.9, 0.89, 0.5]], dtype=np.float32)
    columns = np.array([[0, 1, 2]])
    kept_values, kept = diversify(values, columns, vectors, 2, 0.0)
    assert kept.tolist() == [[0, 1]]  # λ = 0: relevance order
    kept_values, kept = diversify(values, columns, vectors, 2, 0.5)
    assert kept.tolist() == [[0, 2]]  # the near-duplicate of item 0 gives way
    assert kept_values.tolist() == [[pytest.approx(0.9), pytest.approx(0.5)]]


def test_diversify_skips_excluded_candidates():
    from llmrec.ranking.diversify import diversify

    vectors = np.eye(3, dtype=np.float32)
    values = np.array([[1.0, -np.inf, 0.2]], dtype=np.float32)
    kept_values, kept = diversify(values, np.array([[0, 1, 2]]), vectors, 3, 0.7)
    assert kept.tolist()[0][:2] == [0, 2]
    assert np.isfinite(kept_values).tolist() == [[True, True, False]]  # nothing left: dropped


def test_recent_items_keep_each_users_latest_distinct_items():
    from llmrec.data.history import map_history
    from llmrec.ranking.scorers.vector import recent_items

    frame = pd.DataFrame(
        [("u", "a", 1), ("u", "b", 2), ("u", "a", 3), ("u", "c", 4), ("v", "b", 1)],
        columns=["user_id", "item_id", "order"],
    )
    history = map_history(frame, np.array(["a", "b", "c"], dtype=object))
    table = recent_items(history, np.array(["v", "x", "u"], dtype=object), 2)
    assert table.tolist() == [[1, -1], [-1, -1], [2, 0]]


def test_interests_match_each_side_of_a_two_sided_user():
    from llmrec.ranking.scorers.vector import interest_scorer

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


# ---- the tiled path for dot products (vector_top_k) and its bfloat16 fast mode ----


def brute_force(users, items, k, seen=None):
    """Every score, seen items −inf, each row fully sorted by (score desc, column asc)."""
    scores = users.astype(np.float64) @ items.T.astype(np.float64)
    if seen is not None:
        rows = np.repeat(np.arange(len(users)), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(len(items)), scores.shape), -scores), axis=1)
    order = order[:, :k]
    return np.take_along_axis(scores, order, 1), order


def tiled(users, items, k, kernel=vector_top_k, **options):
    """The blocks of `kernel` (vector_top_k or torch_top_k) stacked: (values, columns) of every
    user."""
    blocks = list(kernel(users, items, k, **options))
    assert [b[0] for b in blocks] == sorted(b[0] for b in blocks)  # in user order
    assert blocks[-1][1] == len(users)
    assert all(isinstance(b[2], np.ndarray) and b[3].dtype == np.int64 for b in blocks)
    return np.concatenate([b[2] for b in blocks]), np.concatenate([b[3] for b in blocks])


def random_seen(rng, n_users, n_items, most):
    lengths = rng.integers(0, min(most, n_items) + 1, size=n_users)
    indices = [rng.choice(n_items, n, replace=False) for n in lengths]
    return Seen(np.r_[0, np.cumsum(lengths)], np.concatenate(indices).astype(np.int64))


def assert_same_lists(values, columns, expected_values, expected_columns):
    """Equal finite entries (item and score), and −inf in the same places."""
    finite = np.isfinite(expected_values)
    np.testing.assert_array_equal(np.isfinite(values), finite)
    np.testing.assert_array_equal(columns[finite], expected_columns[finite])
    np.testing.assert_allclose(values[finite], expected_values[finite], rtol=1e-6, atol=1e-6)


@settings(max_examples=120, deadline=None)
@given(
    st.integers(1, 25),  # users
    st.integers(1, 200),  # items
    st.integers(1, 60),  # k, often more than an item block, sometimes more than the catalog
    st.integers(1, 70),  # items per tile
    st.sampled_from([2, 3, 16]),  # column groups of a tile (tile_top_k)
    st.integers(1, 40_000),  # budget in bytes: from one user per tile to all
    st.booleans(),  # seen items
    st.integers(0, 2**31 - 1),
)
def test_tiles_equal_a_full_sort_with_ties_and_seen_items(
    n_users, n_items, k, step, groups, budget, with_seen, seed
):
    rng = np.random.default_rng(seed)
    users = rng.integers(-2, 3, size=(n_users, 3)).astype(np.float32)  # integer scores: ties
    items = rng.integers(-2, 3, size=(n_items, 3)).astype(np.float32)
    seen = random_seen(rng, n_users, n_items, 6) if with_seen else None
    kk = min(k if rng.random() < 0.5 else k % 5 + 1, n_items)  # small k: grouped tiles
    expected = brute_force(users, items, kk, seen)
    # numpy's exact kernel, torch's exact tiles (a GPU's code), and fast mode: integers are
    # exact in bfloat16; ties make fast mode redo users
    for kernel, fast in ((vector_top_k, False), (torch_top_k, False), (torch_top_k, True)):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tiles, "ITEM_BLOCK", step)
            patch.setattr(topk, "GROUPS", groups)
            patch.setattr(blas_top_k, "TILE_ITEMS", step)
            patch.setattr(blas_top_k, "TILE_USERS", step % 7 + 1)
            values, columns = tiled(
                users, items, kk, kernel, seen=seen, budget_bytes=budget, fast=fast
            )
        assert values.shape == (n_users, kk)
        assert_same_lists(values, columns, *expected)


@pytest.mark.parametrize("levels", [2, 50, None])  # many ties, some, none (continuous)
@pytest.mark.parametrize("k", [1, 4, 10])
def test_grouped_tile_top_k_is_exact_on_wide_tiles(levels, k):
    rng = np.random.default_rng(k)
    shape = (60, 16 * 160)
    scores = rng.normal(size=shape) if levels is None else rng.integers(0, levels, size=shape)
    scores = scores.astype(np.float32)
    scores[::7, ::3] = -np.inf  # seen items
    values, columns = topk.tile_top_k(torch.from_numpy(scores), k, exact=True)
    expected_values, expected_columns = reference_top_k(scores, k)
    np.testing.assert_array_equal(columns.numpy(), expected_columns)
    np.testing.assert_array_equal(values.numpy(), expected_values)
    rough_values, rough_columns = topk.tile_top_k(torch.from_numpy(scores), k, exact=False)
    np.testing.assert_array_equal(rough_values.numpy(), expected_values)  # some order of ties
    picked = np.take_along_axis(scores, rough_columns.numpy(), 1)
    np.testing.assert_array_equal(picked, rough_values.numpy())


def test_ties_across_item_blocks_go_to_the_smallest_column(monkeypatch):
    monkeypatch.setattr(tiles, "ITEM_BLOCK", 2)
    users = np.ones((3, 1), dtype=np.float32)
    items = np.array([[1], [2], [2], [1], [2], [3], [2]], dtype=np.float32)
    values, columns = tiled(users, items, 4)
    assert columns.tolist() == [[5, 1, 2, 4]] * 3
    assert values.tolist() == [[3, 2, 2, 2]] * 3


def test_rank_blocks_with_vectors_matches_the_general_path(monkeypatch):
    """The tiled path and scoring every item at once (any Scorer) write the same rows."""
    monkeypatch.setattr(tiles_module, "ITEM_BLOCK", 7)
    users, items = random_tables(n_users=40, n_items=60, dim=8, seed=3)
    seen = random_seen(np.random.default_rng(1), 40, 60, 10)
    scorer = vector_scorer(users, items)
    assert isinstance(scorer, VectorScorer)

    class Untiled(Scorer):  # scores whole blocks: rank_blocks cannot take the tiled path
        def __call__(self, start, stop):
            return scorer(start, stop)

    general = Untiled()

    for k in (1, 5, 100):
        for fast in (False, True):
            tiles = rank_blocks(
                users.ids, items.ids, scorer, k, seen=seen, budget_bytes=3000, fast=fast
            )
            whole = rank_blocks(users.ids, items.ids, general, k, seen=seen)
            tiles, whole = pd.concat(tiles, ignore_index=True), pd.concat(whole, ignore_index=True)
            pd.testing.assert_frame_equal(tiles, whole, check_exact=False, rtol=1e-6, atol=1e-6)


def normalized(rng, n, dim):
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("clustered", [False, True])
def test_fast_mode_agrees_with_exact_and_returns_float32_scores(monkeypatch, clustered):
    """Random unit vectors (d=64), and items in tight clusters (scores crowd together, many fall
    on the same bfloat16 value): the lists match exact mode's, and every returned score is the
    float32 dot product of its user and item."""
    monkeypatch.setattr(tiles, "ITEM_BLOCK", 1000)
    rng = np.random.default_rng(7)
    users, items = normalized(rng, 500, 64), normalized(rng, 4000, 64)
    if clustered:
        centres = normalized(rng, 20, 64)
        items = centres[rng.integers(0, 20, 4000)] + 0.02 * normalized(rng, 4000, 64)
    seen = random_seen(rng, 500, 4000, 30)
    exact_values, exact_columns = tiled(users, items, 10, seen=seen)
    values, columns = tiled(users, items, 10, seen=seen, fast=True, budget_bytes=2**20)
    # Items agree except where scores tie to float32 rounding: re-scored dot products are summed
    # in another order than the matrix product, so such near-ties may swap.
    assert (columns == exact_columns).mean() >= 0.999
    np.testing.assert_allclose(values, exact_values, rtol=0, atol=1e-6)
    dots = np.einsum("ud,ukd->uk", users, items[columns])
    np.testing.assert_allclose(values, dots, rtol=1e-5, atol=1e-6)
    assert np.isfinite(values).all() and (np.diff(values, axis=1) <= 0).all()
    for user in range(500):
        assert len(set(columns[user])) == 10
        assert not set(columns[user]) & set(seen.indices[seen.indptr[user] : seen.indptr[user + 1]])


def test_fast_mode_redoes_users_whose_candidates_bfloat16_cannot_tell_apart():
    """40 items whose scores differ by less than bfloat16 resolution: the top 3 by float32 sit
    at the highest columns, so a bfloat16 top-9 would pick arbitrary ones. Fast mode has to
    notice and rank those users in float32."""
    users = np.ones((4, 1), dtype=np.float32)
    items = (1 + np.arange(40, dtype=np.float32)[:, None] * 2**-12).astype(np.float32)
    values, columns = tiled(users, items, 3, fast=True)
    assert columns.tolist() == [[39, 38, 37]] * 4
    assert values[0].tolist() == items[[39, 38, 37], 0].tolist()


def test_fast_mode_needs_plain_vector_scores():
    ids = np.array(["u1"], dtype=object)
    items = np.array(["a", "b"], dtype=object)
    with pytest.raises(InputError, match="--fast"):
        next(rank_blocks(ids, items, popularity_scorer(np.array([1, 2])), 1, fast=True))


def write_tables(folder, rng, n_users=30, n_items=50, dim=8):
    meta = {"model": "m", "model_fingerprint": "f"}
    for kind, n in (("users", n_users), ("items", n_items)):
        ids = np.array([f"{kind[0]}{i:03d}" for i in range(n)], dtype=object)
        write_vectors(
            VectorTable(kind, ids, normalized(rng, n, dim), meta), str(folder / f"{kind}.parquet")
        )
    history = pd.DataFrame(
        {"user_id": ["u000", "u000", "u007"], "item_id": ["i003", "i010", "i042"]}
    )
    history.to_csv(folder / "h.csv", index=False)


def test_cli_fast_option_end_to_end(tmp_path):
    write_tables(tmp_path, np.random.default_rng(5))
    common = ["rank", "--items", "items.parquet", "--users", "users.parquet"]
    common += ["--user-history", "h.csv", "-k", "7", "-q"]
    exact = run_cli(*common, "-o", "exact.csv", cwd=tmp_path)
    fast = run_cli(*common, "--fast", "-o", "fast.csv", cwd=tmp_path)
    assert exact.returncode == 0 and fast.returncode == 0, fast.stderr.decode()
    exact, fast = pd.read_csv(tmp_path / "exact.csv"), pd.read_csv(tmp_path / "fast.csv")
    assert len(fast) == 30 * 7
    pd.testing.assert_frame_equal(fast, exact, check_exact=False, atol=2e-6)
    assert not {"i003", "i010"} & set(fast[fast.user_id == "u000"].item_id)
    baseline = run_cli(
        "rank",
        "--baseline",
        "popular",
        "--user-history",
        "h.csv",
        "--fast",
        "-o",
        "b.csv",
        cwd=tmp_path,
    )
    assert baseline.returncode != 0 and b"--fast" in baseline.stderr


def unit_rows(rng, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def scored_tables(tmp_path_factory):
    """Unit user and item vectors as Parquet tables, sized so tiles differ with the budget."""
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("scored")
    users = table("users", [f"u{i:04d}" for i in range(700)], unit_rows(rng, 700, 384))
    items = table("items", [f"i{i:05d}" for i in range(3000)], unit_rows(rng, 3000, 384))
    write_vectors(users, str(folder / "users.parquet"))
    write_vectors(items, str(folder / "items.parquet"))
    return folder


def test_written_scores_do_not_depend_on_tiles_or_fast_mode(scored_tables):
    """A written score is one fixed-order dot product of its (user, item) pair: tile and block
    shapes (which change how BLAS adds up a product) and --fast cannot move a printed digit."""
    outputs = []
    for budget, fast in [(None, False), (2**20, False), (5 * 2**20, False), (None, True)]:
        out = scored_tables / f"r-{budget}-{fast}.csv"
        rank_to_file(
            str(scored_tables / "items.parquet"), str(out), RankOptions(fast=fast, budget_bytes=budget),
            users_path=str(scored_tables / "users.parquet"),
        )  # fmt: skip
        outputs.append(out.read_bytes())
    assert all(output == outputs[0] for output in outputs[1:])


def test_written_scores_do_not_depend_on_the_thread_count(scored_tables, tmp_path):
    import os

    for threads in ("1", "2"):
        env = {
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
        }
        result = run_cli(
            "rank", "--users", scored_tables / "users.parquet", "-q",
            "--items", scored_tables / "items.parquet", "-o", tmp_path / f"{threads}.csv",
            env={**os.environ, **env},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "1.csv").read_bytes() == (tmp_path / "2.csv").read_bytes()
