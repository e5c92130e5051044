"""`--engine ray`: the same vectors and byte-identical rankings as the local engine.

The session's one local Ray (the `ray_address` fixture in conftest.py: 2 CPUs, bound to
127.0.0.1) is shared by every test here, and the commands run as real subprocesses that join
it with --ray-address. Marked `ray`: `pytest -m "not ray"` skips them, and they skip by
themselves where Ray is not installed. `make test` runs them on one of its two xdist workers
(`--dist loadfile` sends a whole file to one worker) against one Ray while the other worker runs
the rest of the suite: they mostly wait on Ray, so the two overlap well.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, write_shards
from llmrec.embedding.encoder import Encoder
from llmrec.embedding.run import embed_items
from llmrec.embedding.shards import read_items
from llmrec.engine.ray import RayOptions
from llmrec.errors import InputError
from llmrec.io.atomic import staged_folder
from llmrec.io.vectors import VectorTable, read_meta, read_vectors, write_vectors
from llmrec.options import RankOptions
from llmrec.ranking.run import rank_to_file

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


def llmrec(*args) -> None:
    result = run_cli(*map(str, args), "-q")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""  # nothing from Ray reaches a quiet run's stderr


def both_engines(tmp_path, ray_address, items_csv, model, *options, workers=2):
    """Embed with each engine: (the local file, the Ray folder)."""
    local, folder = tmp_path / "items.parquet", tmp_path / "ray_items"
    model_args = ["--model", model] if model else []
    llmrec("embed", items_csv, *model_args, "-o", local, *options)
    llmrec(
        "embed", items_csv, *model_args, "-o", folder, *options,
        "--engine", "ray", "--ray-address", ray_address, "--concurrency", workers,
    )  # fmt: skip
    return local, folder


@pytest.fixture(scope="module")
def sample_tables(tmp_path_factory, ray_address, sample_items):
    """The sample items embedded by each engine with the bundled model (real weights, so that
    Ray workers must reproduce real numerics bit for bit), in chunks of 7 rows and batches of 5
    (so Ray writes 9 shards, and its blocks and each worker's batches differ from the local
    run's): (the local file, the Ray folder)."""
    folder = tmp_path_factory.mktemp("engines")
    options = ["--chunk-rows", "7", "--batch-size", "5"]
    return both_engines(folder, ray_address, sample_items, None, *options)


def test_ray_embed_writes_ordered_shards_equal_to_the_local_table(sample_tables):
    local, folder = sample_tables
    shards = sorted(p.name for p in folder.iterdir())
    assert shards == [f"part-{start:012d}.parquet" for start in range(0, 60, 7)]  # 60 items
    assert [read_meta(str(folder / s))["rows"] for s in shards] == ["7"] * 8 + ["4"]
    expected = {k: v for k, v in read_meta(str(local)).items()}
    assert read_meta(str(folder)) == expected  # same model, settings and row count

    here, there = read_vectors(str(local)), read_vectors(str(folder))
    assert there.ids.tolist() == here.ids.tolist()  # input order
    np.testing.assert_array_equal(there.vectors, here.vectors)  # bitwise, not just within 1e-6
    assert there.extra["text_hash"].tolist() == here.extra["text_hash"].tolist()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["items.parquet", "ray_items"]


def test_ray_rank_is_byte_identical_to_local_from_a_history_or_profiles(
    tmp_path, ray_address, sample_tables, sample_interactions
):
    local, folder = sample_tables
    history = sample_interactions
    ray_args = ["--engine", "ray", "--ray-address", ray_address, "-k", "7"]

    plain = ["--strategy", "mean", "--blend", "text=1"]  # Ray scores text alone
    llmrec(
        "rank",
        "--user-history",
        history,
        "--items",
        local,
        "-k",
        "7",
        *plain,
        "-o",
        tmp_path / "a.csv",
    )
    llmrec(
        "rank", "--user-history", history, "--items", folder, *ray_args, "-o", tmp_path / "b.csv"
    )
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()

    llmrec("profile", history, "--items", folder, "-o", tmp_path / "users.parquet")
    users = ["--users", tmp_path / "users.parquet", "--user-history", history]
    llmrec("rank", *users, "--items", folder, *ray_args, "-o", tmp_path / "c.csv")
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()


def ray_embed(folder, output, ray_address, *options) -> subprocess.CompletedProcess:
    return run_cli(
        "embed", folder, "-o", output, *options,
        "--engine", "ray", "--ray-address", ray_address, "--concurrency", 2,
    )  # fmt: skip


def assert_same_table(folder: Path, local: Path) -> None:
    """The Ray folder holds the local file's rows, bit for bit, in shards named by first row."""
    shards = sorted(p.name for p in folder.iterdir())
    rows = [int(read_meta(str(folder / shard))["rows"]) for shard in shards]
    assert shards == [f"part-{start:012d}.parquet" for start in np.cumsum([0, *rows[:-1]])]
    assert read_meta(str(folder)) == read_meta(str(local))
    here, there = read_vectors(str(local)), read_vectors(str(folder))
    assert there.ids.tolist() == here.ids.tolist()
    np.testing.assert_array_equal(there.vectors, here.vectors)
    assert there.extra["text_hash"].tolist() == here.extra["text_hash"].tolist()


@pytest.mark.parametrize(
    "fmt, text",
    [
        ("parquet", ["--text", "{title} ({category}). {description}"]),
        pytest.param("csv", [], marks=pytest.mark.extended),  # make test-all
    ],
)
def test_ray_reads_a_folder_of_shards_on_the_workers_into_the_local_engines_table(
    tmp_path, ray_address, tiny_bert, sample_items, fmt, text
):
    """Shards part-10, part-2, part-9 of 25, 5 and 30 rows (Parquet in row groups of 4): the
    local engine on their concatenation in file-name order gives the same table."""
    frame = pd.read_csv(sample_items, dtype=str)
    folder = write_shards(tmp_path / "items", frame, fmt)
    frame.to_csv(tmp_path / "all.csv", index=False)
    llmrec(
        "embed", tmp_path / "all.csv", "--model", tiny_bert, *text, "-o", tmp_path / "local.parquet"
    )
    options = ["--model", tiny_bert, *text, "--chunk-rows", 7]
    result = ray_embed(folder, tmp_path / "ray", ray_address, *options)
    assert result.returncode == 0, result.stderr.decode()
    assert "llmrec embed: 60 items (60 distinct texts: 60 encoded" in result.stderr.decode()
    assert_same_table(tmp_path / "ray", tmp_path / "local.parquet")
    assert max(int(read_meta(str(s))["rows"]) for s in (tmp_path / "ray").iterdir()) <= 7
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "all.csv",
        "items",
        "local.parquet",
        "ray",
    ]


@pytest.mark.parametrize(
    "case, fmt",
    [
        ("no column", "csv"),
        ("id twice", "parquet"),
        pytest.param("empty text", "csv", marks=pytest.mark.extended),  # make test-all
        pytest.param("open quote", "csv", marks=pytest.mark.extended),
        pytest.param("not UTF-8", "csv", marks=pytest.mark.extended),
    ],
)
def test_ray_reports_a_bad_folder_as_the_local_engine_and_writes_nothing(
    tmp_path, ray_address, tiny_bert, sample_items, case, fmt
):
    """A missing column is seen in the shards' headers on the driver; an id in two shards, an
    empty text, a quote left open at a shard's end and a shard that is not UTF-8 by the workers. Either way: the local engine's
    one line, exit 2."""
    frame = pd.read_csv(sample_items, dtype=str)
    if case == "id twice":
        frame.loc[27, "item_id"] = frame.loc[2, "item_id"]  # part-2 row 3 = part-10 row 3
    elif case == "empty text":
        frame.loc[41, ["title", "description"]] = None  # part-9 row 12
    elif case == "open quote":  # the last shard's last value, in a column read, never closes
        frame = frame[["item_id", "category", "title", "description"]]
    folder = write_shards(tmp_path / "items", frame, fmt)
    if case == "no column":
        frame.iloc[25:30].drop(columns="description").to_csv(f"{folder}/part-2.csv", index=False)
    elif case == "open quote":
        with open(f"{folder}/part-9.csv", "a") as handle:
            handle.write('Z1,toys,Kite,"A kite, with a tail\n')
    elif case == "not UTF-8":
        with open(f"{folder}/part-2.csv", "ab") as handle:
            handle.write(b"Z2,Caf\xe9 table,Latin-1 text,furniture\n")
    with pytest.raises(InputError) as local:
        read_items(str(folder))
    result = ray_embed(folder, tmp_path / "out", ray_address, "--model", tiny_bert)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [f"llmrec embed: error: {local.value}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items"]


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _encoding_actors() -> list[int]:
    """Pids of the EncodeShards actors (Ray names a worker by its actor) of this session's Ray,
    whose raylet this process started: never another Ray's on a shared machine."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if b"EncodeShards" in handle.read() and _parent(_parent(int(entry))) == os.getpid():
                    pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


@pytest.mark.extended  # about a minute: make test-all
def test_a_worker_killed_mid_embed_fails_the_run_in_one_line_or_is_retried(
    tmp_path, ray_address, tiny_bert
):
    """An encoding actor is SIGKILLed once the first shard is written: either Ray retries its
    work and the folder equals the local engine's table, or the run fails in one line and
    nothing is under the output name, nor beside it."""
    n = 3000
    frame = pd.DataFrame(
        {
            "item_id": [f"i{k:05d}" for k in range(n)],
            "title": [f"item {k} of a b c" for k in range(n)],
        }
    )
    folder = write_shards(tmp_path / "items", frame, "parquet", sizes=(1000, 500, 1500))
    run = tmp_path / "run"
    run.mkdir()
    command = [
        Path(sys.executable).with_name("llmrec"), "embed", folder, "--model", tiny_bert,
        "-o", run / "vectors", "--chunk-rows", 100, "-q",
        "--engine", "ray", "--ray-address", ray_address, "--concurrency", 2,
    ]  # fmt: skip
    proc = subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed, deadline = None, time.monotonic() + 240
    while proc.poll() is None and killed is None and time.monotonic() < deadline:
        written = [f for staged in run.glob(".vectors.*") for f in staged.iterdir()]
        actors = _encoding_actors() if written else []
        if actors:
            killed = actors[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=240)
    assert killed is not None, "the run ended before a worker could be killed"
    if proc.returncode == 0:  # Ray retried the killed worker's blocks
        expected, _ = embed_items(folder, Encoder.load(str(tiny_bert)))
        got = read_vectors(str(run / "vectors"))
        assert got.ids.tolist() == expected.ids.tolist()
        np.testing.assert_array_equal(got.vectors, expected.vectors)
    else:
        assert proc.returncode == 2
        lines = stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("llmrec embed: error: Ray failed: "), lines
        assert list(run.iterdir()) == []


@pytest.mark.extended
@pytest.mark.slow
@pytest.mark.parametrize("n_items", [333, 1000, 3000, None])
def test_movielens_subsets_rank_to_the_same_bytes_on_ray(tmp_path, ray_address, movielens, n_items):
    """The first N items of the catalog, the history filtered to them: every size gives other
    tile and block shapes on each engine, and the bytes must not care."""
    items, history = str(movielens["items"]), str(movielens["history"])
    if n_items is not None:
        table = read_vectors(items)
        keep = slice(0, n_items)
        subset = VectorTable(table.kind, table.ids[keep], table.vectors[keep], table.meta,
                             {name: column[keep] for name, column in table.extra.items()})  # fmt: skip
        items = str(tmp_path / "items.parquet")
        write_vectors(subset, items)
        frame = pd.read_csv(history, dtype=str)
        history = str(tmp_path / "history.csv")
        frame[frame["item_id"].isin(set(subset.ids))].to_csv(history, index=False)
    for name, ray in (("local.csv", None), ("ray.csv", RayOptions(ray_address, 2))):
        rank_to_file(
            items,
            str(tmp_path / name),
            RankOptions(k=10, blend={"text": 1.0}),
            history_path=history,
            ray=ray,
        )
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["embed", "items.csv", "--ray-address", "auto"], "need --engine ray"),
        (["embed", "items.csv", "--engine", "spark"], "--engine 'spark'"),
        (["embed", "items.csv", "--engine", "ray", "--concurrency", "0"], "--concurrency 0"),
        (["embed", "items.csv", "--engine", "ray", "--reuse", "old.parquet"], "--engine local"),
        (
            ["rank", "--user-history", "h.csv", "--items", "i", "--concurrency", "2"],
            "need --engine",
        ),
    ],
)
def test_ray_options_are_checked_before_anything_runs(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and message in lines[0], lines


def test_rank_on_ray_refuses_scores_that_are_not_vectors(
    tmp_path, ray_address, sample_tables, sample_interactions
):
    local, _ = sample_tables
    result = run_cli(
        "rank", "--user-history", sample_interactions, "--items", local,
        "--blend", "text=1,cooc=1", "--engine", "ray", "--ray-address", ray_address,
        "-o", tmp_path / "r.csv",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--engine ray ranks by user and item vectors" in result.stderr.decode()
    assert not (tmp_path / "r.csv").exists()


def test_engine_ray_without_ray_says_how_to_install_it(tmp_path, sample_items):
    blocker = tmp_path / "no-ray" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    exe = Path(sys.executable).with_name("llmrec")
    result = subprocess.run(
        [exe, "embed", sample_items, "-o", tmp_path / "items", "--engine", "ray"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "llmrec embed: error: --engine ray needs Ray: pip install 'llmrec[ray]'"
    ]
    assert not (tmp_path / "items").exists()


def test_staged_folder_replaces_the_output_only_on_success(tmp_path):
    output = tmp_path / "items"
    output.mkdir()
    (output / "part-000000000000.parquet").write_text("yesterday")
    stale = tmp_path / ".items.999999999.abc.tmp"  # from a killed run whose pid is gone
    stale.mkdir()
    with pytest.raises(RuntimeError), staged_folder(str(output)) as staging:
        (Path(staging) / "part-000000000000.parquet").write_text("half of today")
        raise RuntimeError("worker died")
    assert (output / "part-000000000000.parquet").read_text() == "yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items"]  # stale and failed removed

    with staged_folder(str(output)) as staging:
        (Path(staging) / "part-000000000000.parquet").write_text("today")
    assert [p.read_text() for p in output.iterdir()] == ["today"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items"]


@pytest.mark.extended
def test_ray_ranks_by_a_trained_model_as_the_local_engine(
    tmp_path, ray_address, sample_tables, sample_interactions
):
    local, _ = sample_tables
    model = tmp_path / "model"
    small = ["--dim", "16", "--max-len", "8", "--epochs", "2"]
    llmrec("train", sample_interactions, "--items", local, "-o", model, *small)
    common = ["--user-history", sample_interactions, "--items", local, "--model", model]
    llmrec("rank", *common, "-o", tmp_path / "a.csv")
    llmrec(
        "rank", *common, "--engine", "ray", "--ray-address", ray_address, "-o", tmp_path / "b.csv"
    )
    llmrec("rank", *common, "--fast", "-o", tmp_path / "c.csv")
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
