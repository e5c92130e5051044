"""The whole pipeline through the command line: tiny models in-process, the real model and
the real executable in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import run_cli
from llmrec import __version__
from llmrec.cli import app
from llmrec.evaluation.scoring import evaluate_frames

runner = CliRunner()


def split_into(interactions, history, heldout):
    """`llmrec split` with the default leave-last strategy, quietly."""
    return invoke(
        "split", interactions, "--history-out", history, "--heldout-out", heldout, "--quiet"
    )


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def split_files(tmp_path_factory, sample_interactions):
    folder = tmp_path_factory.mktemp("split")
    split_into(sample_interactions, folder / "history.csv", folder / "heldout.csv")
    return folder / "history.csv", folder / "heldout.csv"


def test_pipeline_runs_on_encoder_and_decoder_models(
    tiny_model, sample_items, split_files, tmp_path
):
    history, heldout = split_files
    items, users = tmp_path / "items.parquet", tmp_path / "users.parquet"
    two_step, one_step = tmp_path / "two.csv", tmp_path / "one.csv"
    invoke("embed", sample_items, "--model", tiny_model, "-o", items, "--quiet")
    invoke("profile", history, "--items", items, "-o", users, "--quiet")
    invoke(
        "rank",
        "--users",
        users,
        "--user-history",
        history,
        "--items",
        items,
        "-k",
        10,
        "-o",
        two_step,
        "--quiet",
    )
    invoke(
        "rank", "--user-history", history, "--items", items, "-k", 10, "-o", one_step,
        "--strategy", "mean", "--blend", "text=1", "--quiet",
    )  # fmt: skip
    assert two_step.read_bytes() == one_step.read_bytes()
    rankings = pd.read_csv(one_step, dtype={"user_id": str, "item_id": str})
    assert list(rankings.columns) == ["user_id", "rank", "item_id", "score"]
    assert rankings.groupby("user_id").size().eq(10).all()
    seen = pd.read_csv(history, dtype=str)
    overlap = rankings.merge(seen, on=["user_id", "item_id"])
    assert overlap.empty, "items from the history must not be recommended"
    report = json.loads(invoke("evaluate", one_step, "--truth", heldout, "-f", "json").stdout)
    assert report["users"]["evaluated"] == 25
    assert 0 <= report["metrics"]["ndcg@10"] <= 1


def test_include_seen_keeps_history_items(tiny_bert, sample_items, split_files, tmp_path):
    history, _ = split_files
    items = tmp_path / "items.parquet"
    invoke("embed", sample_items, "--model", tiny_bert, "-o", items, "--quiet")
    invoke(
        "rank",
        "--user-history",
        history,
        "--items",
        items,
        "-k",
        60,
        "--include-seen",
        "-o",
        tmp_path / "all.csv",
        "--quiet",
    )
    rankings = pd.read_csv(tmp_path / "all.csv", dtype=str)
    assert rankings.groupby("user_id").size().eq(60).all()


def test_info_describes_a_vector_table(tiny_gpt2, sample_items, tmp_path):
    items = tmp_path / "items.parquet"
    invoke("embed", sample_items, "--model", tiny_gpt2, "--pooling", "last", "-o", items, "--quiet")
    meta = json.loads(invoke("info", items, "--format", "json").stdout)
    assert meta["kind"] == "items" and meta["rows"] == "60" and meta["dim"] == "32"
    assert meta["pooling"] == "last" and meta["model"] == str(tiny_gpt2)
    assert "model_fingerprint" in meta and meta["version"] == __version__


def test_version_and_module_entry_point():
    assert invoke("--version").stdout.strip() == f"llmrec {__version__}"
    module = subprocess.run(
        [sys.executable, "-m", "llmrec", "--version"], capture_output=True, text=True, check=True
    )
    assert module.stdout.strip() == f"llmrec {__version__}"


def random_ndcg(heldout: pd.DataFrame, items: list[str], seen: pd.DataFrame, seed: int) -> float:
    """NDCG@10 of random unseen items per user, the floor a recommender must beat."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in sorted(heldout.user_id.unique()):
        unseen = np.setdiff1d(items, seen.loc[seen.user_id == user, "item_id"])
        rows += [(user, item) for item in rng.permutation(unseen)[:10]]
    run = pd.DataFrame(rows, columns=["user_id", "item_id"])
    return evaluate_frames(run, heldout, [10]).summary()["ndcg@10"]


@pytest.mark.slow
def test_real_executable_and_bundled_model_beat_random(
    sample_items, sample_embedded, split_files, tmp_path
):
    history, heldout = split_files
    items, embedded = sample_embedded  # `llmrec embed` run once for the session
    assert embedded.stdout == b""
    assert b"60 items" in embedded.stderr and len(embedded.stderr.splitlines()) == 1
    ranked = run_cli("rank", "--user-history", history, "--items", items, "-k", "10", "-o", "-")
    assert ranked.returncode == 0, ranked.stderr
    lines = ranked.stdout.decode().splitlines()
    assert lines[0] == "user_id,rank,item_id,score" and len(lines) == 251
    rankings_path = tmp_path / "rankings.csv"
    rankings_path.write_bytes(ranked.stdout)
    evaluated = run_cli("evaluate", rankings_path, "--truth", heldout, "-f", "json", "-k", "10")
    ndcg = json.loads(evaluated.stdout)["metrics"]["ndcg@10"]
    truth = pd.read_csv(heldout, dtype=str)
    catalog = pd.read_csv(sample_items, dtype=str).item_id.tolist()
    seen = pd.read_csv(history, dtype=str)
    floor = max(random_ndcg(truth, catalog, seen, seed) for seed in range(5))
    assert ndcg > 2 * floor, (ndcg, floor)


def test_items_from_stdin_equal_items_from_the_file(tiny_bert, sample_items, tmp_path):
    from_file, from_stdin = tmp_path / "file.parquet", tmp_path / "stdin.parquet"
    invoke("embed", sample_items, "--model", tiny_bert, "-o", from_file, "--quiet")
    piped = run_cli(
        "embed",
        "-",
        "--model",
        tiny_bert,
        "-o",
        from_stdin,
        "--quiet",
        stdin=sample_items.read_bytes(),
    )
    assert piped.returncode == 0, piped.stderr
    a, b = pd.read_parquet(from_file), pd.read_parquet(from_stdin)
    assert a.item_id.tolist() == b.item_id.tolist()
    np.testing.assert_allclose(np.stack(a.embedding), np.stack(b.embedding), atol=1e-6)


@pytest.mark.slow
def test_free_text_history_gets_matching_accessories(sample_items, sample_embedded, tmp_path):
    """A user who wrote 'phone case' and 'charging cable' gets phone accessories first."""
    items, _ = sample_embedded  # the bundled model's vectors of "{title}. {description}"
    history = tmp_path / "wrote.csv"
    history.write_text(
        "user_id,text\nA,phone case\nA,charging cable\nB,espresso beans\nB,milk frother\n"
    )
    invoke(
        "rank",
        "--user-history",
        history,
        "--history-text-col",
        "text",
        "--items",
        items,
        "-k",
        "3",
        "-o",
        tmp_path / "r.csv",
        "--quiet",
    )
    ranked = pd.read_csv(tmp_path / "r.csv", dtype=str)
    category = pd.read_csv(sample_items, dtype=str).set_index("item_id")["category"]
    assert (category[ranked[ranked.user_id == "A"].item_id] == "phone accessories").all()
    assert (category[ranked[ranked.user_id == "B"].item_id] == "coffee").sum() >= 2
    invoke(
        "profile",
        history,
        "--history-text-col",
        "text",
        "--items",
        items,
        "-o",
        tmp_path / "users.parquet",
        "--quiet",
    )
    from llmrec.io.vectors import read_vectors

    users = read_vectors(str(tmp_path / "users.parquet"), "users")
    assert users.ids.tolist() == ["A", "B"] and users.extra["n_history"].tolist() == [2, 2]


def test_outputs_get_the_same_permissions_as_any_new_file(tmp_path, sample_interactions):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    split_into(sample_interactions, tmp_path / "h.csv", tmp_path / "t.csv")
    assert (tmp_path / "h.csv").stat().st_mode == plain.stat().st_mode


def test_outputs_to_a_device_or_fifo_are_written_in_place(tmp_path, sample_interactions):
    """`-o /dev/null` or a named pipe must be written to, never replaced by a regular file."""
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    split_into(sample_interactions, fifo, tmp_path / "t.csv")
    reader.join(timeout=30)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received and received[0].startswith(b"user_id,item_id")


def test_outputs_through_a_symlink_replace_its_target(tmp_path, sample_interactions):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    split_into(sample_interactions, link, tmp_path / "t.csv")
    assert link.is_symlink() and real.read_text().startswith("user_id,item_id")


def test_temp_files_of_killed_runs_are_removed_but_live_ones_kept(tmp_path, sample_interactions):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has exited
    stale = tmp_path / f".h.csv.{dead.pid}.abc123.tmp"
    live = tmp_path / f".h.csv.{os.getpid()}.def456.tmp"  # this test process is alive
    stale.write_text("partial")
    live.write_text("being written")
    split_into(sample_interactions, tmp_path / "h.csv", tmp_path / "t.csv")
    assert not stale.exists() and live.exists()
    assert (tmp_path / "h.csv").read_text().startswith("user_id,item_id")
