"""Item-to-item models learned from histories, and blended scoring in rank."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from llmrec.cli import app
from llmrec.data.history import map_history
from llmrec.errors import InputError
from llmrec.io.vectors import VectorTable, write_vectors
from llmrec.ranking.blend import blend_scorer, parse_blend, standardized
from llmrec.ranking.scorers import item_to_item as collab

ITEMS = np.array(["a", "b", "c", "d"], dtype=object)


def history(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "order"])
    return map_history(frame, ITEMS)


def test_cooccurrence_is_cosine_normalised_with_zero_diagonal():
    # users: {a, b}, {a, b}, {a, c} → C_ab = 2, C_ac = 1, C_aa = 3, C_bb = 2, C_cc = 1
    h = history(
        [("1", "a", 1), ("1", "b", 2), ("2", "a", 1), ("2", "b", 2), ("3", "a", 1), ("3", "c", 2)]
    )
    similarity = collab.cooccurrence(collab.interaction_matrix(h, 4)).toarray()
    assert similarity[0, 1] == pytest.approx(2 / np.sqrt(3 * 2))
    assert similarity[0, 2] == pytest.approx(1 / np.sqrt(3))
    assert similarity[1, 2] == 0 and np.all(np.diag(similarity) == 0)
    np.testing.assert_allclose(similarity, similarity.T)


def test_ease_matches_its_closed_form():
    rng = np.random.default_rng(0)
    rows = [(str(u), ITEMS[i], t) for u in range(30) for t, i in enumerate(rng.choice(4, 2, False))]
    h = history(rows)
    binary = collab.interaction_matrix(h, 4).toarray().astype(np.float64)
    weights = collab.ease(collab.interaction_matrix(h, 4), regularization=2.0)
    p = np.linalg.inv(binary.T @ binary + 2.0 * np.eye(4))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(weights, expected, atol=1e-5)


def test_history_matrix_keeps_each_items_largest_weight_in_the_requested_order():
    h = history([("u", "a", 1), ("u", "b", 2), ("u", "a", 3), ("v", "c", 1)])
    rows = collab.history_matrix(
        h,
        np.array(["v", "x", "u"], dtype=object),
        4,
        np.array([0.2, 0.5, 1.0, 1.0], dtype=np.float32),
    )
    dense = rows.toarray()
    np.testing.assert_allclose(dense, [[0, 0, 1, 0], [0, 0, 0, 0], [1.0, 0.5, 0, 0]])


def test_parse_blend():
    assert parse_blend("text=1,cooc=0.5, pop=0.1") == {"text": 1.0, "cooc": 0.5, "pop": 0.1}
    for bad in ("nope=1", "text=x", "text=0", ""):
        with pytest.raises(InputError, match="--blend"):
            parse_blend(bad)


def test_blend_is_a_weighted_sum_of_standardised_rows():
    a = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    b = torch.tensor([[30.0, 10.0, 20.0], [0.0, 1.0, 0.0]])
    scorer = blend_scorer([(1.0, lambda s, e: a[s:e].clone()), (0.5, lambda s, e: b[s:e].clone())])
    expected = standardized(a) + 0.5 * standardized(b)
    torch.testing.assert_close(scorer(0, 2), expected)
    assert torch.all(standardized(a)[1] == 0)  # a constant row carries no preference


def write_catalog(tmp_path, vectors, rows) -> None:
    """An item vector table of ITEMS and a history file, in tmp_path."""
    write_vectors(
        VectorTable(
            "items",
            ITEMS,
            np.asarray(vectors, dtype=np.float32),
            {"model": "m", "model_fingerprint": "f"},
        ),
        str(tmp_path / "i.parquet"),
    )
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    frame.to_csv(tmp_path / "h.csv", index=False)


def rank_cli(tmp_path, *options: str) -> pd.DataFrame:
    """Run `llmrec rank` on the files of write_catalog and read the rankings back."""
    out = tmp_path / "r.csv"
    result = CliRunner().invoke(
        app,
        [
            "rank",
            "--user-history",
            str(tmp_path / "h.csv"),
            "--items",
            str(tmp_path / "i.parquet"),
            *options,
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.stderr
    return pd.read_csv(out, dtype=str)


def test_rank_blend_through_the_cli(tmp_path):
    # text says a user of a wants d (same vector); co-occurrence says b follows a
    rows = [
        ("1", "a", 1),
        ("1", "b", 2),
        ("2", "a", 1),
        ("2", "b", 2),
        ("3", "c", 1),
        ("3", "d", 2),
        ("4", "a", 1),
    ]
    write_catalog(tmp_path, [[1, 0], [0, 1], [0, 1], [1, 0]], rows)
    first = lambda ranked: ranked.set_index("user_id").loc["4", "item_id"]  # noqa: E731
    assert first(rank_cli(tmp_path, "--blend", "text=1,cooc=1", "-k", "1")) == "b"
    assert first(rank_cli(tmp_path, "--blend", "text=1", "-k", "1")) == "d"
    assert first(rank_cli(tmp_path, "--blend", "ease=1", "--ease-lambda", "0.5", "-k", "1")) == "b"


def test_ease_through_woodbury_equals_the_direct_inverse():
    rng = np.random.default_rng(1)
    many_items = np.array([f"i{j}" for j in range(12)], dtype=object)
    rows = [
        (str(u), many_items[i], t) for u in range(5) for t, i in enumerate(rng.choice(12, 4, False))
    ]
    h = map_history(pd.DataFrame(rows, columns=["user_id", "item_id", "order"]), many_items)
    binary = collab.interaction_matrix(h, 12)
    assert binary.shape[0] < binary.shape[1]  # more items than users: the Woodbury path
    x = binary.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 3.0 * np.eye(12))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(collab.ease(binary, 3.0), expected, atol=1e-5)


def test_explain_names_the_history_item_behind_each_recommendation(tmp_path):
    # a ~ d and b ~ c in text; user 5 has a (old) and b (recent)
    rows = [
        ("5", "a", 1),
        ("5", "b", 2),
        ("6", "a", 1),
        ("6", "c", 2),
        ("7", "b", 1),
        ("7", "d", 2),
    ]
    write_catalog(tmp_path, [[1, 0], [0, 1], [0.1, 0.99], [0.99, 0.1]], rows)
    # text alone: c is explained by b (similar text), d by a; with co-occurrence added, c by a
    # (user 6 bought a then c) and d by b (user 7 bought b then d)
    for blend, expected in (
        ("text=1", {"c": "b", "d": "a"}),
        ("text=1,cooc=1", {"c": "a", "d": "b"}),
    ):
        ranked = rank_cli(tmp_path, "--blend", blend, "--explain", "-k", "2")
        assert list(ranked.columns) == ["user_id", "rank", "item_id", "score", "because"]
        assert ranked[ranked.user_id == "5"].set_index("item_id")["because"].to_dict() == expected
        pairs = set(zip(ranked.user_id, ranked.because, strict=True))
        assert pairs <= {(u, i) for u, i, _ in rows}


def test_cached_models_are_reused_until_the_history_changes(tmp_path):
    h = history([("1", "a", 1), ("1", "b", 2), ("2", "a", 1), ("2", "c", 2)])
    cache = tmp_path / "cache"
    for kind in ("cooc", "ease"):
        first = collab.fit_cached(kind, h, ITEMS, ease_lambda=1.0, cache_dir=str(cache))
        files = sorted(p.name for p in cache.iterdir() if p.name.startswith(kind))
        assert len(files) == 1 and not any(p.name.endswith(".tmp") for p in cache.iterdir())
        again = collab.fit_cached(kind, h, ITEMS, ease_lambda=1.0, cache_dir=str(cache))
        dense = lambda m: m.toarray() if hasattr(m, "toarray") else m  # noqa: E731
        np.testing.assert_array_equal(dense(first.matrix), dense(again.matrix))
    changed = history([("1", "a", 1), ("1", "b", 2), ("2", "a", 1), ("2", "d", 2)])
    collab.fit_cached("cooc", changed, ITEMS, cache_dir=str(cache))
    assert len([p for p in cache.iterdir() if p.name.startswith("cooc")]) == 2


def test_items_nobody_interacted_with_borrow_scores_from_their_text_neighbours():
    from llmrec.ranking.scorers.item_to_item import TextNeighbours, item_model_scorer

    # item 3 is new; in text it is close to item 1 and a little to item 0
    vectors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.2, 0.9, 0.0]], dtype=np.float32)
    cold = np.array([False, False, False, True])
    borrow = TextNeighbours.of(cold, vectors, m=2)
    assert borrow.items.tolist() == [3] and borrow.neighbours.tolist() == [[1, 0]]
    np.testing.assert_allclose(borrow.weights.sum(axis=1), 1)

    # a real (dense) item-to-item model: the user's one history item 0 points to 1 and 2
    import scipy.sparse as sp

    weights = np.zeros((4, 4), dtype=np.float32)
    weights[0, 1], weights[0, 2] = 1.0, 0.5
    model = collab.ItemModel("ease", weights, ITEMS)
    rows = sp.csr_matrix(np.array([[1, 0, 0, 0]], dtype=np.float32))
    scores = item_model_scorer(model, rows, borrow)(0, 1)[0]
    w = borrow.weights[0]
    assert scores[3].item() == pytest.approx(w[0] * 1.0 + w[1] * 0.0)
    assert scores[3] > scores[2]  # reachable: ranks above an interacted but unrelated item
