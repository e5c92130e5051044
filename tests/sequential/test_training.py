"""`llmrec train` and `--model` in profile and rank, through the real CLI: the model folder, the
same weights for the same seed, a killed run that resumes to the weights of an unbroken one,
checks of the item table, and the model's scores in rank (alone, from profiles, blended)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli

CUDA = torch.cuda.is_available()
SMALL = ["--dim", "16", "--heads", "2", "--max-len", "8", "--batch-size", "32"]
# Small models train fastest on one thread (and two test workers share the two cores).
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def llmrec(*args) -> str:
    result = run_cli(*map(str, args), env=ONE_THREAD)
    assert result.returncode == 0, result.stderr.decode()
    return result.stderr.decode()


@pytest.fixture(scope="module")
def tiny_items(tmp_path_factory, tiny_bert, sample_items):
    """The sample items embedded with the tiny BERT."""
    path = tmp_path_factory.mktemp("seq") / "items.parquet"
    llmrec("embed", sample_items, "--model", tiny_bert, "-o", path, "-q")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_items, sample_interactions):
    """A small model trained on the whole sample history."""
    folder = tmp_path_factory.mktemp("trained") / "model"
    llmrec("train", sample_interactions, "--items", tiny_items, "-o", folder, *SMALL, "--epochs", 3)
    return folder


def test_train_writes_a_model_folder_that_names_its_inputs(trained, tiny_items):
    assert sorted(p.name for p in trained.iterdir()) == [
        "config.json",
        "inner.safetensors",
        "item_ids.json",
        "model.safetensors",
    ]
    config = json.loads((trained / "config.json").read_text())
    assert config["architecture"]["dim"] == 16 and config["architecture"]["max_len"] == 8
    assert config["items"]["dim"] == 32  # the tiny BERT's width
    assert len(config["history"]["fingerprint"]) == 64
    phases = [epoch["phase"] for epoch in config["validation"]]
    assert phases == ["search"] * 3 + ["final"]
    assert all(0 <= e["ndcg"] <= 1 for e in config["validation"][:3])
    assert not list(trained.parent.glob(".*"))  # no checkpoint or temp folder left behind


def test_the_same_seed_gives_the_same_weights(tmp_path, trained, tiny_items, sample_interactions):
    again = tmp_path / "again"
    llmrec("train", sample_interactions, "--items", tiny_items, "-o", again, *SMALL, "--epochs", 3)
    assert (again / "model.safetensors").read_bytes() == (
        trained / "model.safetensors"
    ).read_bytes()


def synthetic_history(path: Path, item_ids: list[str], users: int = 400, length: int = 40) -> None:
    """Users walking the catalog in runs, so there is an order to learn and enough data for an
    epoch to take a moment."""
    rng = np.random.default_rng(0)
    start = rng.integers(0, len(item_ids), size=users)
    steps = rng.integers(1, 3, size=(users, length)).cumsum(axis=1)
    items = np.asarray(item_ids)[(start[:, None] + steps) % len(item_ids)]
    pd.DataFrame(
        {
            "user_id": np.repeat([f"u{i}" for i in range(users)], length),
            "item_id": items.ravel(),
            "timestamp": np.tile(np.arange(length), users),
        }
    ).to_csv(path, index=False)


@pytest.mark.extended  # make test-all: keeps make test within 8 minutes
def test_a_killed_run_resumes_to_the_weights_of_an_unbroken_one(tmp_path, tiny_items):
    history = tmp_path / "history.csv"
    ids = pd.read_parquet(tiny_items, columns=["item_id"])["item_id"].tolist()
    synthetic_history(history, ids, users=250, length=32)
    args = ["train", history, "--items", tiny_items, *SMALL, "--epochs", 4, "--patience", 0]
    llmrec(*args, "-o", tmp_path / "unbroken")

    exe = Path(sys.executable).with_name("llmrec")
    command = [str(exe), *map(str, args), "-o", str(tmp_path / "resumed")]
    checkpoint = tmp_path / ".resumed.checkpoint" / "checkpoint.safetensors"
    process = subprocess.Popen(command, stderr=subprocess.PIPE, env=ONE_THREAD)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "resumed").exists()  # nothing under the output name

    summary = llmrec(*args, "-o", tmp_path / "resumed")
    assert "resumed after epoch" in summary
    unbroken, resumed = tmp_path / "unbroken", tmp_path / "resumed"
    assert (resumed / "model.safetensors").read_bytes() == (
        unbroken / "model.safetensors"
    ).read_bytes()
    assert not checkpoint.parent.exists()


@pytest.mark.extended  # make test-all: keeps make test within 8 minutes
def test_rank_by_the_model_from_history_or_profiles_gives_the_same_bytes(
    tmp_path, trained, tiny_items, sample_interactions
):
    common = ["--items", tiny_items, "--model", trained]
    llmrec("rank", "--user-history", sample_interactions, *common, "-o", tmp_path / "a.csv")
    llmrec("profile", sample_interactions, *common, "-o", tmp_path / "users.parquet")
    llmrec(
        "rank", "--users", tmp_path / "users.parquet", "--user-history", sample_interactions,
        *common, "-o", tmp_path / "b.csv",
    )  # fmt: skip
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    rankings = pd.read_csv(tmp_path / "a.csv")
    seen = pd.read_csv(sample_interactions)
    assert rankings.merge(seen, on=["user_id", "item_id"]).empty  # seen items excluded

    llmrec(
        "rank", "--user-history", sample_interactions, *common, "--blend", "seq=1,cooc=1",
        "--explain", "-o", tmp_path / "blend.csv",
    )  # fmt: skip
    blend = pd.read_csv(tmp_path / "blend.csv", keep_default_na=False)
    assert not blend.equals(rankings) and (blend["because"] != "").all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["rank", "--blend", "seq=1,text=1"], "--blend seq needs --model"),
        (["rank", "--model", "{model}", "--items", "{other}"], "trained on item vectors of model"),
        (["rank", "--model", "{empty}"], "not a model folder from 'llmrec train'"),
        (["train", "--dim", "30", "--heads", "4"], "--dim 30 must be a multiple of --heads"),
        (["train", "--item-ids", "maybe"], "--item-ids 'maybe'"),
        pytest.param(
            ["train", "--device", "cuda"],
            "--device cuda: no CUDA GPU is available here",
            marks=pytest.mark.skipif(CUDA, reason="a CUDA GPU is here"),
        ),
        (["profile", "--model", "{model}", "--strategy", "decay", "--half-life", "3"], "leave out"),
    ],
)
def test_bad_model_options_give_one_line_and_no_output(
    tmp_path, trained, tiny_items, sample_embedded, sample_interactions, args, message
):
    other = sample_embedded[0]  # the sample items with the bundled model
    (tmp_path / "empty").mkdir()
    paths = {"{model}": str(trained), "{other}": str(other), "{empty}": str(tmp_path / "empty")}
    args = [paths.get(a, a) for a in args]
    command, rest = args[0], args[1:]
    history = (
        ["--user-history", sample_interactions] if command == "rank" else [sample_interactions]
    )
    items = [] if "--items" in rest else ["--items", tiny_items]
    result = run_cli(command, *history, *items, *rest, "-o", tmp_path / "out", env=ONE_THREAD)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2, lines
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.extended  # make test-all: keeps make test within 8 minutes
@pytest.mark.slow
def test_an_item_added_after_training_reaches_phone_buyers_by_its_text(
    tmp_path, sample_embedded, sample_items, sample_interactions
):
    """Trained on the sample with the bundled model, then a phone accessory joins the catalog:
    the model has never seen it, yet ranks it from its text into every phone buyer's top 10."""
    items, _ = sample_embedded
    llmrec("train", sample_interactions, "--items", items, "-o", tmp_path / "model", "-q")
    new_item = (
        'P061,MagSnap Leather Card Wallet,"A slim leather wallet for two cards that snaps '
        "magnetically onto the back of a smartphone such as the Aurora X12, and comes off in "
        'one pull.",phone accessories\n'
    )
    catalog = tmp_path / "items.csv"
    catalog.write_text(Path(sample_items).read_text() + new_item)
    llmrec("embed", catalog, "--reuse", items, "-o", tmp_path / "items.parquet", "-q")
    llmrec(
        "rank", "--user-history", sample_interactions, "--items", tmp_path / "items.parquet",
        "--model", tmp_path / "model", "-o", tmp_path / "rankings.csv",
    )  # fmt: skip
    history = pd.read_csv(sample_interactions)
    phones = history["item_id"].isin([f"P00{i}" for i in range(1, 7)])
    buyers = set(history.loc[phones, "user_id"])
    rankings = pd.read_csv(tmp_path / "rankings.csv")
    reached = set(rankings.loc[rankings["item_id"] == "P061", "user_id"])
    assert buyers and buyers <= reached


def test_tune_searches_the_model_weight_and_rank_config_brings_the_model(
    tmp_path, trained, tiny_items, sample_interactions
):
    config = tmp_path / "tuned.json"
    llmrec(
        "tune", sample_interactions, "--items", tiny_items, "--model", trained, "--trials", 8,
        "-o", config,
    )  # fmt: skip
    tuned = json.loads(config.read_text())
    drawn = [t["params"]["blend"] for t in tuned["trials"][1:] if t["params"]]
    assert any("seq=" in blend for blend in drawn)  # the model's weight is searched
    assert "seq=" not in tuned["fixed_recipe"]["options"]["blend"]
    options = tuned["options"]
    assert ("seq=" in options["blend"]) == (options.get("model") == str(trained))

    llmrec(
        "rank", "--config", config, "--user-history", sample_interactions, "--items", tiny_items,
        "-o", tmp_path / "a.csv",
    )  # fmt: skip
    flags = ["--blend", options["blend"], "--ease-lambda", options["ease_lambda"]]
    flags += ["--interests", options["interests"], "--strategy", options["strategy"]]
    if options["half_life"] is not None:
        flags += ["--half-life", options["half_life"]]
    if options["max_history"] is not None:
        flags += ["--max-history", options["max_history"]]
    if options.get("model"):
        flags += ["--model", options["model"]]
    llmrec(
        "rank", *flags, "--user-history", sample_interactions, "--items", tiny_items,
        "-o", tmp_path / "b.csv",
    )  # fmt: skip
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_above_full_softmax_max_the_softmax_is_sampled_and_still_learns(
    tmp_path, tiny_items, sample_interactions
):
    """A catalog larger than --full-softmax-max trains on sampled negatives (logQ-corrected):
    the loss stays finite and falls, and held-out items are found."""
    folder = tmp_path / "sampled"
    llmrec(
        "train", sample_interactions, "--items", tiny_items, "-o", folder, *SMALL,
        "--full-softmax-max", 10, "--epochs", 6, "--patience", 0,
    )  # fmt: skip
    curve = json.loads((folder / "config.json").read_text())["validation"]
    assert all(np.isfinite(epoch["loss"]) for epoch in curve)
    search = [epoch for epoch in curve if epoch["phase"] == "search"]
    assert search[-1]["loss"] < search[0]["loss"]
    assert max(epoch["ndcg"] for epoch in search) > 0
