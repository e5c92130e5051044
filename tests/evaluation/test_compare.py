"""Several runs side by side, per-user output, plots and baselines through the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from llmrec.cli import app

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.stderr)
    return result


@pytest.fixture
def runs(tmp_path):
    """A truth of 60 users and three runs: perfect, half right, always wrong."""
    users = [f"u{i:02d}" for i in range(60)]
    truth = pd.DataFrame({"user_id": users, "item_id": [f"t{i}" for i in range(60)]})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    rows = {"good": [], "half": [], "bad": []}
    for i, user in enumerate(users):
        rows["good"] += [(user, 1, f"t{i}"), (user, 2, "x")]
        first = f"t{i}" if i % 2 else "x"
        rows["half"] += [(user, 1, first), (user, 2, "y")]
        rows["bad"] += [(user, 1, "x"), (user, 2, "y")]
    paths = {}
    for name, data in rows.items():
        paths[name] = tmp_path / f"{name}.csv"
        pd.DataFrame(data, columns=["user_id", "rank", "item_id"]).to_csv(paths[name], index=False)
    return tmp_path / "truth.csv", paths


def test_runs_side_by_side_with_tests_against_the_first(runs, tmp_path):
    truth, paths = runs
    out = invoke(
        "evaluate",
        paths["half"],
        paths["good"],
        paths["bad"],
        "--truth",
        truth,
        "-k",
        "1",
        "-f",
        "json",
        "--ci",
        "--bootstrap",
        "200",
    )
    report = json.loads(out.stdout)
    names = [r["name"] for r in report["runs"]]
    assert names == [str(paths["half"]), str(paths["good"]), str(paths["bad"])]
    hits = [r["metrics"]["hit_rate@1"] for r in report["runs"]]
    assert hits == [0.5, 1.0, 0.0]
    good, bad = report["comparisons"]
    assert good["reference"] == str(paths["half"])
    assert good["metrics"]["hit_rate@1"]["difference"] == 0.5
    assert (good["metrics"]["hit_rate@1"]["wins"], good["metrics"]["hit_rate@1"]["ties"]) == (
        30,
        30,
    )
    assert good["metrics"]["hit_rate@1"]["p_randomization"] < 0.01
    assert bad["metrics"]["hit_rate@1"]["losses"] == 30
    low, high = report["runs"][0]["ci"]["hit_rate@1"]
    assert low < 0.5 < high
    assert report["bootstrap"]["resamples"] == 200


def test_table_marks_significant_differences(runs):
    truth, paths = runs
    out = invoke("evaluate", paths["half"], paths["good"], "--truth", truth, "-k", "1")
    row = next(line for line in out.stdout.splitlines() if "HitRate@1" in line)
    assert "+0.5000*" in row and "30/30/0" in row
    assert "same 60 truth users" in out.stderr


def test_markdown_side_by_side_has_one_row_per_metric_and_k(runs):
    truth, paths = runs
    out = invoke(
        "evaluate", paths["good"], paths["bad"], "--truth", truth, "-k", "1,2", "-f", "markdown"
    )
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].split("|")[1:4] == [" metric ", " good ", " bad "]
    assert len(rows) == 1 + 6 * 2


def test_per_user_output_and_plot(runs, tmp_path):
    truth, paths = runs
    per_user, plot = tmp_path / "per_user.parquet", tmp_path / "report.png"
    invoke(
        "evaluate",
        paths["good"],
        paths["half"],
        "--truth",
        truth,
        "-k",
        "1,2",
        "--per-user",
        per_user,
        "--plot",
        plot,
        "--ci",
        "--bootstrap",
        "100",
        "--quiet",
    )
    frame = pd.read_parquet(per_user)
    assert frame.shape[0] == 120 and list(frame.columns[:2]) == ["run", "user_id"]
    half = frame[frame.run == str(paths["half"])].set_index("user_id")
    assert half.loc["u01", "hit_rate@1"] == 1 and half.loc["u00", "hit_rate@1"] == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_run_twice_is_refused(runs):
    truth, paths = runs
    result = runner.invoke(
        app, ["evaluate", str(paths["good"]), str(paths["good"]), "--truth", str(truth)]
    )
    assert result.exit_code == 2 and "twice" in result.stderr


def test_baselines_exclude_seen_items_and_rank_by_popularity(tmp_path):
    history = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c", "d"],
            "item_id": ["i1", "i2", "i1", "i3", "i1", "i2"],
        }
    )
    history.to_csv(tmp_path / "h.csv", index=False)
    invoke(
        "rank",
        "--baseline",
        "popular",
        "--user-history",
        tmp_path / "h.csv",
        "-k",
        "3",
        "-o",
        tmp_path / "pop.csv",
        "--quiet",
    )
    pop = pd.read_csv(tmp_path / "pop.csv", dtype=str)
    assert pop[pop.user_id == "c"].item_id.tolist() == ["i2", "i3"]
    assert pop[pop.user_id == "d"].item_id.tolist() == ["i1", "i3"]
    assert pop[pop.user_id == "a"].item_id.tolist() == ["i3"]
    invoke(
        "rank",
        "--baseline",
        "random",
        "--seed",
        "1",
        "--user-history",
        tmp_path / "h.csv",
        "-k",
        "3",
        "-o",
        tmp_path / "r1.csv",
        "--quiet",
    )
    invoke(
        "rank",
        "--baseline",
        "random",
        "--seed",
        "1",
        "--user-history",
        tmp_path / "h.csv",
        "-k",
        "3",
        "-o",
        tmp_path / "r2.csv",
        "--quiet",
    )
    assert (tmp_path / "r1.csv").read_bytes() == (tmp_path / "r2.csv").read_bytes()
    random = pd.read_csv(tmp_path / "r1.csv", dtype=str)
    merged = random.merge(history, on=["user_id", "item_id"])
    assert merged.empty and set(random.user_id) == {"a", "b", "c", "d"}


def test_random_baseline_is_roughly_uniform(tmp_path):
    users = [f"u{i}" for i in range(400)]
    pd.DataFrame({"user_id": users, "item_id": "seen"}).to_csv(tmp_path / "h.csv", index=False)
    items = pd.DataFrame({"user_id": ["z"] * 10, "item_id": [f"i{j}" for j in range(10)]})
    pd.concat([pd.read_csv(tmp_path / "h.csv"), items]).to_csv(tmp_path / "h.csv", index=False)
    invoke(
        "rank",
        "--baseline",
        "random",
        "--user-history",
        tmp_path / "h.csv",
        "-k",
        "1",
        "-o",
        tmp_path / "r.csv",
        "--quiet",
    )
    firsts = pd.read_csv(tmp_path / "r.csv", dtype=str)
    counts = firsts[firsts.user_id != "z"].item_id.value_counts()
    assert len(counts) == 10 and counts.max() < 3 * counts.min()
    assert np.isclose(counts.sum(), 400)
