"""`llmrec tune` and `llmrec rank --config`, through the real executable on sample_data."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

import llmrec
from conftest import run_cli

TRIALS = ["--trials", "6", "--seed", "3"]
FIXED_RECIPE = {  # the README's: --strategy decay --half-life 1 --blend … --ease-lambda 100
    "strategy": "decay",
    "half_life": 1.0,
    "max_history": None,
    "blend": "text=0.25,cooc=1,ease=0.5,pop=0.1",
    "ease_lambda": 100,
    "interests": 0,
}
SUMMARY = re.compile(
    r"llmrec tune: 6 trials in [\d.]+ s; ndcg@10 (0\.\d{4}) \[0\.\d{4}, 0\.\d{4}\] on the inner "
    r"split of 25 users \(fixed recipe (0\.\d{4})\); wrote \S*tuned\.json"
)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny_bert, sample_items, sample_interactions):
    """sample_data split, its items embedded with the tiny BERT, and `llmrec tune` run on the
    history: (folder, the finished tune run)."""
    folder = tmp_path_factory.mktemp("tune-cli")
    llmrec.split(str(sample_interactions), str(folder / "history.csv"), str(folder / "heldout.csv"))
    llmrec.embed(str(sample_items), str(folder / "items.parquet"), model=str(tiny_bert))
    done = run_cli(
        "tune", folder / "history.csv", "--items", folder / "items.parquet",
        "-o", folder / "tuned.json", *TRIALS,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return folder, done


def rank(folder, *args: str, history: str = "history.csv") -> tuple[bytes, str]:
    """Run `llmrec rank` on the sample history: (the rankings CSV, stderr)."""
    done = run_cli(
        "rank", "--user-history", folder / history, "--items", folder / "items.parquet",
        "-o", "-", *args,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout, done.stderr.decode()


def flags(options: dict) -> list[str]:
    """A config's options as command-line flags."""
    out = []
    for name, value in options.items():
        if value is not None:
            out += ["--" + name.replace("_", "-"), str(value)]
    return out


def without_seconds(config: dict) -> dict:
    config = json.loads(json.dumps(config))
    del config["search"]["seconds"]
    for trial in config["trials"]:
        del trial["seconds"]
    return config


def test_tune_writes_the_chosen_options_and_the_fixed_recipe_first(tuned):
    folder, done = tuned
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and SUMMARY.fullmatch(lines[0]), lines
    config = json.loads((folder / "tuned.json").read_text())

    assert config["metric"] == "ndcg@10" and config["k"] == 10
    first = config["trials"][0]
    assert first["number"] == 0 and first["params"] == FIXED_RECIPE
    assert config["fixed_recipe"]["options"] == first["params"]
    assert config["fixed_recipe"]["value"] == first["value"]
    assert config["value"] == max(t["value"] for t in config["trials"] if t["value"] is not None)
    assert config["value"] >= config["fixed_recipe"]["value"]
    low, high = config["interval"]
    assert low <= config["value"] <= high
    assert SUMMARY.fullmatch(lines[0]).groups() == (
        f"{config['value']:.4f}",
        f"{config['fixed_recipe']['value']:.4f}",
    )
    history = (folder / "history.csv").read_bytes()
    assert config["history"] == {
        "path": str(folder / "history.csv"),
        "fingerprint": hashlib.sha256(history).hexdigest(),
        "rows": 220,
        "users": 25,
        "inner_users": 25,
    }
    assert config["search"]["sampler"] == "optuna TPE"
    assert config["search"]["seed"] == 3 and config["search"]["trials"] == 6
    assert [t["number"] for t in config["trials"]] == list(range(6))


def test_the_same_seed_and_trials_give_the_same_config(tuned):
    folder, _ = tuned
    again = run_cli(
        "tune", folder / "history.csv", "--items", folder / "items.parquet",
        "-o", folder / "again.json", *TRIALS, "-q",
    )  # fmt: skip
    assert again.returncode == 0 and again.stderr == b""
    first = json.loads((folder / "tuned.json").read_text())
    second = json.loads((folder / "again.json").read_text())
    assert without_seconds(second) == without_seconds(first)


def test_rank_config_ranks_as_its_options_given_as_flags_and_flags_override_it(tuned):
    folder, _ = tuned
    options = json.loads((folder / "tuned.json").read_text())["options"]
    configured, stderr = rank(folder, "--config", folder / "tuned.json")
    assert "warning" not in stderr
    assert configured == rank(folder, *flags(options))[0]

    overridden, _ = rank(folder, "--config", folder / "tuned.json", "--blend", "pop=1")
    expected = folder / "expected.csv"
    llmrec.rank(
        str(folder / "items.parquet"), str(expected), history=str(folder / "history.csv"),
        blend={"pop": 1.0}, ease_lambda=float(options["ease_lambda"]),
        interests=options["interests"], weighting=llmrec.options.Weighting(
            options["strategy"], options["half_life"], max_history=options["max_history"]
        ),
    )  # fmt: skip
    assert overridden == expected.read_bytes() != configured


def test_rank_warns_when_the_history_changed_since_tuning(tuned):
    folder, _ = tuned
    rows = (folder / "history.csv").read_text().splitlines(keepends=True)
    (folder / "changed.csv").write_text("".join(rows[:-1]))
    _, stderr = rank(folder, "--config", folder / "tuned.json", history="changed.csv")
    warning = (
        f"llmrec rank: warning: {folder / 'changed.csv'} changed since {folder / 'tuned.json'} "
        "was tuned (fingerprint differs); rerun llmrec tune"
    )
    assert stderr.splitlines()[0] == warning


@pytest.mark.parametrize(
    "command, content, message",
    [
        ("rank", "{not json", "bad.json: not a JSON file"),
        ("rank", '{"metric": "ndcg@10"}', 'bad.json: no "options" object'),
        ("rank", '{"options": {"interests": "2"}}', "bad.json: options.interests must be a whole"),
        ("tune", "user_id,item_id\nU1,P001\nU2,P002\n", "no user has 2 or more events"),
        ("tune --metric ndcg", "", "--metric 'ndcg': give a metric@k, e.g. ndcg@10"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tuned, tmp_path, command, content, message):
    folder, _ = tuned
    (tmp_path / "bad.json").write_text(content)
    if command == "rank":
        args = ["rank", "--config", tmp_path / "bad.json", "--user-history", folder / "history.csv"]
    else:
        (tmp_path / "bad.csv").write_text(content or "user_id,item_id\n")
        args = [*command.split(), tmp_path / "bad.csv"]
    done = run_cli(*args, "--items", folder / "items.parquet", "-o", tmp_path / "out")
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"llmrec {command.split()[0]}: error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()
