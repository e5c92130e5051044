"""The CPU's exact top-k kernel (numpy alone): its sort keys, its threads, and a rank command
that never imports torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from llmrec.data.history import Seen
from llmrec.engine.device import may_have_cuda
from llmrec.io.vectors import VectorTable, write_vectors
from llmrec.ranking import blas_top_k
from llmrec.ranking.blas_top_k import key_columns, key_values, rank_keys


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.integers(1, 40),
        elements=st.floats(width=32, allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0, -1.0]),
    ),
    st.data(),
)
def test_rank_keys_sort_as_score_desc_then_column_asc_and_decode(values, data):
    columns = np.asarray(
        data.draw(st.lists(st.integers(0, 2**31 - 1), min_size=len(values), max_size=len(values))),
        dtype=np.int64,
    )
    keys = rank_keys(values, columns)
    expected = np.lexsort((columns, -values.astype(np.float64)))  # −0.0 == 0.0 here too
    np.testing.assert_array_equal(np.sort(keys), keys[expected])
    np.testing.assert_array_equal(key_values(keys), values + np.float32(0.0))
    np.testing.assert_array_equal(key_columns(keys), columns)


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def stacked(blocks) -> tuple[np.ndarray, np.ndarray]:
    parts = list(blocks)
    assert [p[0] for p in parts] == sorted(p[0] for p in parts)
    return np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts])


def test_threads_and_tile_shapes_give_the_same_lists(monkeypatch):
    users, items = unit_rows(700, 24, 1), unit_rows(5000, 24, 2)
    lengths = np.random.default_rng(3).integers(0, 30, size=len(users))
    indices = np.random.default_rng(4).integers(0, len(items), size=lengths.sum())
    seen = Seen(np.r_[0, np.cumsum(lengths)], indices.astype(np.int64))
    one = stacked(blas_top_k.blas_top_k(users, items, 10, seen=seen, threads=1))
    monkeypatch.setattr(blas_top_k, "TILE_USERS", 64)
    monkeypatch.setattr(blas_top_k, "TILE_ITEMS", 512)
    many = stacked(blas_top_k.blas_top_k(users, items, 10, seen=seen, threads=3))
    np.testing.assert_array_equal(one[1], many[1])
    np.testing.assert_array_equal(one[0], many[0])
    scores = users.astype(np.float64) @ items.T.astype(np.float64)
    rows = np.repeat(np.arange(len(users)), lengths)
    scores[rows, indices] = -np.inf
    best = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    assert (best == one[1]).mean() > 0.999  # float32 near-ties aside
    chosen_seen = (one[1][rows] == indices[:, None]).any(axis=1)
    assert not chosen_seen.any()  # no seen item comes back


def test_users_with_every_item_seen_get_minus_inf_entries():
    users, items = unit_rows(3, 8, 5), unit_rows(4, 8, 6)
    seen = Seen(np.array([0, 4, 6, 6]), np.array([0, 1, 2, 3, 1, 3]))
    values, columns = stacked(blas_top_k.blas_top_k(users, items, 3, seen=seen))
    assert np.isneginf(values[0]).all()
    assert np.isfinite(values[1, :2]).all() and np.isneginf(values[1, 2])
    assert set(columns[1, :2]) == {0, 2}
    assert np.isfinite(values[2]).all()


NO_TORCH = """
import runpy, sys
sys.argv = ["llmrec", "rank", "--users", sys.argv[1], "--items", sys.argv[2], "-k", "5",
            "-q", "-o", sys.argv[3]]
try:
    runpy.run_module("llmrec", run_name="__main__")
except SystemExit as exit:
    code = exit.code
print(code, "torch" in sys.modules)
"""


@pytest.mark.skipif(may_have_cuda(), reason="finding a GPU here takes torch")
def test_plain_rank_command_never_imports_torch(tmp_path):
    meta = {"model": "m", "model_fingerprint": "f", "dim": "16"}
    for kind, n, seed in (("users", 50, 7), ("items", 300, 8)):
        ids = np.array([f"{kind[0]}{i}" for i in range(n)], dtype=object)
        table = VectorTable(kind, ids, unit_rows(n, 16, seed), meta)
        write_vectors(table, str(tmp_path / f"{kind[0]}.pq"))
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *(str(tmp_path / n) for n in ("u.pq", "i.pq", "r.csv"))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["0", "False"]  # a GPU machine imports torch to find it
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 1 + 50 * 5
