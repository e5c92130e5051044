"""The Python API: `llmrec.split/embed/profile/rank/evaluate` are the functions the command line
calls, so the same inputs give the same bytes either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import llmrec
from conftest import run_cli


def test_importing_llmrec_loads_no_stage_until_a_verb_is_used():
    code = "import sys, llmrec; print(any(m.startswith(('llmrec.ranking', 'torch')) for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    assert "top k" in llmrec.rank.__doc__


def test_every_verb_gives_the_bytes_of_its_command(
    tmp_path, tiny_bert, sample_items, sample_interactions
):
    api, cli = tmp_path / "api", tmp_path / "cli"
    api.mkdir(), cli.mkdir()

    llmrec.split(str(sample_interactions), str(api / "h.csv"), str(api / "t.csv"))
    llmrec.embed(str(sample_items), str(api / "i.parquet"), model=str(tiny_bert), batch_size=7)
    llmrec.profile(str(api / "h.csv"), str(api / "i.parquet"), str(api / "u.parquet"))
    result = llmrec.rank(
        str(api / "i.parquet"), str(api / "r.csv"), users=str(api / "u.parquet"),
        history=str(api / "h.csv"), k=5, blend={"text": 1, "cooc": 0.5}, explain=True,
    )  # fmt: skip
    report = llmrec.evaluate(str(api / "r.csv"), str(api / "t.csv"), ks=[5])

    for args in (
        ["split", sample_interactions, "--history-out", cli / "h.csv", "--heldout-out", cli / "t.csv"],
        ["embed", sample_items, "-o", cli / "i.parquet", "--model", tiny_bert, "--batch-size", "7"],
        ["profile", cli / "h.csv", "--items", cli / "i.parquet", "-o", cli / "u.parquet"],
        ["rank", "--items", cli / "i.parquet", "-o", cli / "r.csv", "--users", cli / "u.parquet",
         "--user-history", cli / "h.csv", "-k", "5", "--blend", "text=1,cooc=0.5", "--explain"],
        ["evaluate", cli / "r.csv", "--truth", cli / "t.csv", "-k", "5", "-f", "json", "-o", cli / "e.json"],
    ):  # fmt: skip
        done = run_cli(*args, "-q")
        assert done.returncode == 0, done.stderr.decode()

    for name in ("h.csv", "t.csv", "i.parquet", "u.parquet", "r.csv"):
        assert (api / name).read_bytes() == (cli / name).read_bytes(), name
    assert result.users == 25 and result.rows == 125
    assert report.runs[0].summary() == pytest.approx(
        json.loads((cli / "e.json").read_text())["metrics"], abs=1e-12
    )


def test_options_are_checked_when_built():
    with pytest.raises(llmrec.errors.InputError, match="-k 0: must be at least 1"):
        llmrec.rank("items.parquet", "r.csv", k=0)


def test_train_and_rank_with_a_model_give_the_bytes_of_their_commands(
    tmp_path, tiny_bert, sample_items, sample_interactions
):
    import torch

    items = tmp_path / "i.parquet"
    llmrec.embed(str(sample_items), str(items), model=str(tiny_bert))
    small = {"dim": 16, "max_len": 8, "epochs": 2}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command below, for the same float sums
    try:
        result = llmrec.train(str(sample_interactions), str(items), str(tmp_path / "api"), **small)
        llmrec.rank(
            str(items), str(tmp_path / "api.csv"), history=str(sample_interactions),
            model=str(tmp_path / "api"),
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    for args in (
        ["train", sample_interactions, "--items", items, "-o", tmp_path / "cli", "--dim", "16",
         "--max-len", "8", "--epochs", "2"],
        ["rank", "--items", items, "--user-history", sample_interactions, "--model",
         tmp_path / "cli", "-o", tmp_path / "cli.csv"],
    ):  # fmt: skip
        done = run_cli(*args, "-q", env=one_thread)
        assert done.returncode == 0, done.stderr.decode()
    assert result.best_epoch in (1, 2) and len(result.epochs) == 3
    weights = "model.safetensors"
    assert (tmp_path / "api" / weights).read_bytes() == (tmp_path / "cli" / weights).read_bytes()
    assert (tmp_path / "api.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()


def test_without_an_output_path_each_verb_returns_in_memory_what_the_file_holds(
    tmp_path, tiny_bert, sample_items, sample_interactions
):
    """split, embed, profile and rank without a path write nothing and return the contents of
    the file the same call writes with a path; evaluate scores DataFrames as it scores files,
    and its report's dict is the JSON the command writes."""
    import numpy as np
    import pandas as pd

    from llmrec.io.vectors import read_vectors

    files = tmp_path / "files"
    files.mkdir()
    before = sorted(tmp_path.iterdir())

    history, heldout = llmrec.split(str(sample_interactions))
    llmrec.split(str(sample_interactions), str(files / "h.csv"), str(files / "t.csv"))
    pd.testing.assert_frame_equal(
        history, pd.read_csv(files / "h.csv", dtype=str), check_dtype=False
    )
    pd.testing.assert_frame_equal(
        heldout, pd.read_csv(files / "t.csv", dtype=str), check_dtype=False
    )

    table = llmrec.embed(str(sample_items), model=str(tiny_bert), batch_size=7)
    llmrec.embed(str(sample_items), str(files / "i.parquet"), model=str(tiny_bert))
    stored = read_vectors(str(files / "i.parquet"))
    assert table.ids.tolist() == stored.ids.tolist() and table.meta == stored.meta
    np.testing.assert_array_equal(table.matrix, stored.matrix)  # bit for bit

    users = llmrec.profile(str(files / "h.csv"), str(files / "i.parquet"))
    llmrec.profile(str(files / "h.csv"), str(files / "i.parquet"), str(files / "u.parquet"))
    np.testing.assert_array_equal(users.matrix, read_vectors(str(files / "u.parquet")).matrix)

    rankings = llmrec.rank(str(files / "i.parquet"), history=str(files / "h.csv"), k=5)
    llmrec.rank(str(files / "i.parquet"), str(files / "r.csv"), history=str(files / "h.csv"), k=5)
    written = pd.read_csv(files / "r.csv", dtype={"user_id": str, "item_id": str})
    assert (
        rankings[["user_id", "rank", "item_id"]]
        .astype(str)
        .equals(written[["user_id", "rank", "item_id"]].astype(str))
    )
    np.testing.assert_allclose(rankings["score"], written["score"], atol=5e-7)  # %.6f in CSV
    assert sorted(tmp_path.iterdir()) == before  # nothing written beside the files asked for

    from_frames = llmrec.evaluate(rankings, heldout, ks=[5, 10], ci=True, resamples=200)
    from_files = llmrec.evaluate(str(files / "r.csv"), str(files / "t.csv"), ks=[5, 10])
    for name, value in from_files.to_dict()["metrics"].items():
        assert from_frames.to_dict()["metrics"][name] == pytest.approx(value, abs=1e-12), name
    frame = from_frames.to_frame()
    assert list(frame.index) == ["run1"] and "ndcg@10" in frame.columns
    assert "<table" in from_frames._repr_html_() and "bootstrap" in from_frames._repr_html_()
    done = run_cli(
        "evaluate", files / "r.csv", "--truth", files / "t.csv", "-k", "5,10", "-f", "json"
    )
    assert from_files.to_dict()["metrics"] == json.loads(done.stdout)["metrics"]


def test_the_package_ships_type_information():
    import importlib.resources

    assert importlib.resources.files("llmrec").joinpath("py.typed").is_file()


def test_in_memory_inputs_give_the_bytes_that_files_give(
    tmp_path, tiny_bert, sample_items, sample_interactions
):
    """Every verb takes DataFrames, pyarrow Tables and the vector tables embed and profile
    return where it takes files, and writes the same bytes; an error names the argument."""
    import pandas as pd
    import pyarrow as pa

    items_frame = pd.read_csv(sample_items, dtype=str)
    interactions = pd.read_csv(sample_interactions, dtype={"user_id": str, "item_id": str})

    llmrec.split(str(sample_interactions), str(tmp_path / "h.csv"), str(tmp_path / "t.csv"))
    llmrec.split(interactions, str(tmp_path / "h2.csv"), str(tmp_path / "t2.csv"))
    assert (tmp_path / "h.csv").read_bytes() == (tmp_path / "h2.csv").read_bytes()
    assert (tmp_path / "t.csv").read_bytes() == (tmp_path / "t2.csv").read_bytes()

    llmrec.embed(str(sample_items), str(tmp_path / "i.parquet"), model=str(tiny_bert))
    llmrec.embed(
        pa.Table.from_pandas(items_frame), str(tmp_path / "i2.parquet"), model=str(tiny_bert)
    )
    assert (tmp_path / "i.parquet").read_bytes() == (tmp_path / "i2.parquet").read_bytes()

    history = pd.read_csv(tmp_path / "h.csv", dtype=str)
    items = llmrec.embed(items_frame, model=str(tiny_bert))  # a vector table, in memory
    llmrec.profile(
        str(tmp_path / "h.csv"), str(tmp_path / "i.parquet"), str(tmp_path / "u.parquet")
    )
    llmrec.profile(history, items, str(tmp_path / "u2.parquet"))
    assert (tmp_path / "u.parquet").read_bytes() == (tmp_path / "u2.parquet").read_bytes()

    llmrec.rank(
        str(tmp_path / "i.parquet"), str(tmp_path / "r.csv"), history=str(tmp_path / "h.csv")
    )
    llmrec.rank(items, str(tmp_path / "r2.csv"), history=history)
    assert (tmp_path / "r.csv").read_bytes() == (tmp_path / "r2.csv").read_bytes()
    users = llmrec.profile(history, items)
    llmrec.rank(items, str(tmp_path / "r3.csv"), users=users, history=history, blend={"text": 1})
    llmrec.rank(str(tmp_path / "i.parquet"), str(tmp_path / "r4.csv"), users=str(tmp_path / "u.parquet"),
                history=str(tmp_path / "h.csv"), blend={"text": 1})  # fmt: skip
    assert (tmp_path / "r3.csv").read_bytes() == (tmp_path / "r4.csv").read_bytes()

    with pytest.raises(
        llmrec.errors.InputError, match="^the history DataFrame: no column 'user_id'"
    ):
        llmrec.rank(items, history=history.rename(columns={"user_id": "customer"}))
