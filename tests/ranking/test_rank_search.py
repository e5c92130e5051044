"""rank's search: tiles on a device (the GPU code path, run here on the CPU) and approximate
search through a faiss index (--index ivf|hnsw), with seen items excluded and recall checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli
from llmrec.data.history import Seen
from llmrec.errors import InputError
from llmrec.io.vectors import VectorTable, write_vectors
from llmrec.options import RankOptions, SearchOptions
from llmrec.ranking.ann import is_seen, seen_of
from llmrec.ranking.item_blocks import ItemBlocks
from llmrec.ranking.run import rank_to_file
from llmrec.ranking.tiles import torch_top_k, vector_top_k

faiss = pytest.importorskip("faiss")


def clustered(n_items: int, n_users: int, dim: int = 32, seed: int = 0):
    """Unit item vectors around 50 topics, and users who average five items each."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    items = centres[rng.integers(0, 50, n_items)] + 0.6 * rng.standard_normal((n_items, dim))
    items = (items / np.linalg.norm(items, axis=1, keepdims=True)).astype(np.float32)
    users = items[rng.integers(0, n_items, (n_users, 5))].mean(axis=1).astype(np.float32)
    return users, items


def write_tables(folder, users, items):
    meta = {"model": "m", "model_fingerprint": "f", "dim": str(items.shape[1])}
    paths = folder / "users.parquet", folder / "items.parquet"
    ids = [
        np.array([f"{p}{i:05d}" for i in range(len(m))], dtype=object)
        for p, m in (("u", users), ("i", items))
    ]
    write_vectors(VectorTable("users", ids[0], users, meta), str(paths[0]))
    write_vectors(VectorTable("items", ids[1], items, meta), str(paths[1]))
    return paths


def pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame.user_id, frame.item_id, strict=True))


def stacked(blocks):
    parts = list(blocks)
    return np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts])


# ---- tiles on a device: the code a GPU runs, with device="cpu" ----


@pytest.mark.parametrize("fast", [False, True])
def test_device_tiles_equal_the_plain_tiles_with_blocks_streamed_or_resident(fast):
    users, items = clustered(3000, 200)
    seen = Seen(np.arange(0, 201, dtype=np.int64) * 3, np.arange(600, dtype=np.int64) % 3000)
    plain = stacked(vector_top_k(users, items, 10, seen=seen, fast=fast))
    # torch's tiles, as on a GPU: a budget of one tile's worth converts bfloat16 items block by
    # block rather than keeping them resident
    small = stacked(
        torch_top_k(users, items, 10, seen=seen, fast=fast, budget_bytes=60_000, device="cpu")
    )
    np.testing.assert_array_equal(plain[1], small[1])
    np.testing.assert_array_equal(plain[0], small[0])


def test_item_blocks_cover_the_catalog_in_order_in_the_scoring_dtype():
    items = torch.from_numpy(clustered(1000, 1)[1])
    for dtype, budget in ((torch.float32, 0), (torch.bfloat16, 10**9), (torch.bfloat16, 0)):
        blocks = ItemBlocks.of(items, dtype, 300, torch.device("cpu"), budget)
        assert (blocks.resident is not None) == (budget > 0 or dtype == torch.float32)
        spans = [(a, b) for a, b, _ in blocks]
        assert spans == [(0, 300), (300, 600), (600, 900), (900, 1000)]
        joined = torch.cat([block for _, _, block in blocks])
        assert joined.dtype == dtype
        torch.testing.assert_close(joined, items.to(dtype), rtol=0, atol=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_fails_in_one_line(tmp_path):
    users, items = write_tables(tmp_path, *clustered(100, 5))
    done = run_cli(
        "rank", "--users", users, "--items", items, "--device", "cuda", "-o", tmp_path / "r.csv"
    )
    assert done.returncode == 2
    message = done.stderr.decode().strip()
    assert message.count("\n") == 0 and "no CUDA GPU" in message and "--device cpu" in message
    assert not (tmp_path / "r.csv").exists()


def test_device_auto_ranks_on_the_cpu_here_with_the_same_bytes(tmp_path):
    users, items = write_tables(tmp_path, *clustered(2000, 50))
    for device in ("auto", "cpu"):
        options = RankOptions(k=5, search=SearchOptions(device=device))
        result = rank_to_file(
            str(items), str(tmp_path / f"{device}.csv"), options, users_path=str(users)
        )
        assert result.device == (
            "cuda" if torch.cuda.is_available() and device == "auto" else "cpu"
        )
    assert (tmp_path / "auto.csv").read_bytes() == (tmp_path / "cpu.csv").read_bytes()


# ---- approximate search ----


def test_is_seen_and_seen_of_match_plain_sets():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 6, 40)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    seen = Seen(indptr, rng.integers(0, 30, indptr[-1]))
    labels = rng.integers(-1, 30, (15, 8))
    got = is_seen(seen, 10, labels)
    for r in range(15):
        mine = set(seen.indices[indptr[10 + r] : indptr[11 + r]])
        assert got[r].tolist() == [int(label) in mine for label in labels[r]]
    rows = np.array([3, 0, 17, 39])
    subset = seen_of(seen, rows)
    for i, row in enumerate(rows):
        assert (
            subset.indices[subset.indptr[i] : subset.indptr[i + 1]].tolist()
            == seen.indices[indptr[row] : indptr[row + 1]].tolist()
        )


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_index_finds_the_exact_lists_and_reports_the_recall_it_measured(tmp_path, index):
    users, items = write_tables(tmp_path, *clustered(6000, 400))
    exact = rank_to_file(
        str(items), str(tmp_path / "exact.csv"), RankOptions(k=10), users_path=str(users)
    )
    search = SearchOptions(index=index, recall_check=400)
    approx = rank_to_file(
        str(items),
        str(tmp_path / "ann.csv"),
        RankOptions(k=10, search=search),
        users_path=str(users),
    )
    a, e = (
        pd.read_csv(tmp_path / "ann.csv", dtype=str),
        pd.read_csv(tmp_path / "exact.csv", dtype=str),
    )
    assert exact.rows == approx.rows == 4000
    shared = len(pairs(a) & pairs(e)) / len(e)
    assert shared >= 0.95
    assert approx.search.checked == 400 and approx.search.recall == pytest.approx(shared, abs=1e-12)
    # where the lists hold the same items, the written rows are the same bytes
    same = a.groupby("user_id").item_id.apply(frozenset) == e.groupby("user_id").item_id.apply(
        frozenset
    )
    keep = same[same].index
    assert len(keep) > 300
    pd.testing.assert_frame_equal(
        a[a.user_id.isin(keep)].reset_index(drop=True),
        e[e.user_id.isin(keep)].reset_index(drop=True),
    )


def test_index_excludes_seen_items_and_ranks_the_rest(tmp_path):
    user_vectors, item_vectors = clustered(3000, 60)
    users, items = write_tables(tmp_path, user_vectors, item_vectors)
    exact = pd.read_csv(
        run_and_read(tmp_path, users, items, "exact.csv", "--include-seen", "-k", "40"), dtype=str
    )
    # each user has seen their 20 best items (by exact search): the index must skip them all and
    # fetch enough beyond them (an IVF index scanning every list finds what exact search does)
    seen = exact[exact["rank"].astype(int) <= 20][["user_id", "item_id"]]
    seen.to_csv(tmp_path / "history.csv", index=False)
    done = run_cli("rank", "--users", users, "--items", items, "--user-history", tmp_path / "history.csv",
                   "--index", "ivf", "--nprobe", "100000", "--recall-check", "60", "-k", "10",
                   "-o", tmp_path / "ann.csv")  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert "recall@10 1.0000 on 60 users" in done.stderr.decode()
    assert "nprobe 76 of 76 lists" in done.stderr.decode()
    ann = pd.read_csv(tmp_path / "ann.csv", dtype=str)
    expected = exact[exact["rank"].astype(int).between(21, 30)]
    assert pairs(ann) == pairs(expected) and len(ann) == len(expected)


def run_and_read(folder, users, items, name, *args):
    done = run_cli("rank", "--users", users, "--items", items, *args, "-o", folder / name)
    assert done.returncode == 0, done.stderr.decode()
    return folder / name


def test_index_path_is_reused_while_the_vectors_are_the_same(tmp_path):
    user_vectors, item_vectors = clustered(2000, 30)
    users, items = write_tables(tmp_path, user_vectors, item_vectors)
    path = str(tmp_path / "items.ivf")
    search = SearchOptions(index="ivf", index_path=path)
    notes = []
    for name in ("first", "second"):
        result = rank_to_file(
            str(items),
            str(tmp_path / f"{name}.csv"),
            RankOptions(search=search),
            users_path=str(users),
        )
        notes.append(result.search.index)
    assert "built" in notes[0] and "saved to" in notes[0] and "reused" in notes[1]
    assert (tmp_path / "first.csv").read_bytes() == (tmp_path / "second.csv").read_bytes()
    item_vectors[0] = -item_vectors[0]  # one vector changed: the saved index is stale
    users, items = write_tables(tmp_path, user_vectors, item_vectors)
    result = rank_to_file(
        str(items), str(tmp_path / "third.csv"), RankOptions(search=search), users_path=str(users)
    )
    assert "built" in result.search.index


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nprobe", "8"], "--nprobe needs --index"),
        (["--index", "ivf", "--ef-search", "8"], "--ef-search does not apply to --index ivf"),
        (["--index", "hnsw", "--fast"], "--fast and --index"),
        (["--index", "flat"], "--index 'flat'"),
        (["--index", "ivf", "--device", "cuda"], "faiss-cpu"),
        (["--recall-check", "5"], "--recall-check needs --index"),
    ],
)
def test_search_options_are_checked_in_one_line(tmp_path, args, message):
    done = run_cli("rank", "--users", "u.parquet", "--items", "i.parquet", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1 and message in done.stderr.decode()


def test_index_with_a_blend_that_is_not_vectors_fails_in_one_line(
    tmp_path, sample_embedded, sample_interactions
):
    items = sample_embedded[0]
    with pytest.raises(InputError, match="--index rank by user and item vectors"):
        rank_to_file(
            str(items),
            str(tmp_path / "r.csv"),
            RankOptions(blend={"text": 1, "cooc": 1}, search=SearchOptions(index="ivf")),
            history_path=str(sample_interactions),
        )
