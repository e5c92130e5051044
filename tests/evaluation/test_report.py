"""report: JSON, Markdown and table rendering, and `llmrec evaluate` output routing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import run_cli
from llmrec.evaluation.metrics import DISPLAY_NAMES, METRICS
from llmrec.evaluation.report import render
from llmrec.evaluation.scoring import evaluate_files

# truth users A, B, C; C is not ranked; D and E are ranked without truth
TRUTH = "user_id,item_id\nA,i1\nA,i2\nB,i3\nC,i4\n"
RANKINGS = (
    "user_id,rank,item_id,score\n"
    "A,1,i1,0.9\nA,2,x,0.8\nA,3,i2,0.7\nB,1,i3,0.9\n"
    "D,1,i9,0.9\nE,1,i1,0.9\nE,2,i3,0.8\n"  # E ranks A's and B's items: no effect
)
ACCOUNTING = (
    "3 users evaluated; 1 in the truth but missing from the rankings (scored 0); "
    "2 ranked without truth (ignored)"
)


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    rankings, truth = tmp_path / "rankings.csv", tmp_path / "truth.csv"
    rankings.write_text(RANKINGS, encoding="utf-8")
    truth.write_text(TRUTH, encoding="utf-8")
    return rankings, truth


@pytest.fixture
def result(inputs):
    rankings, truth = inputs
    return evaluate_files(str(rankings), str(truth), [1, 3])


def expected_means() -> dict[str, float]:
    """Hand-computed means over A, B, C (C scores 0) at k = 1 and 3."""
    ndcg_a3 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    return {
        "precision@1": 2 / 3, "precision@3": (2 / 3 + 1 / 3) / 3,
        "recall@1": (1 / 2 + 1) / 3, "recall@3": 2 / 3,
        "ndcg@1": 2 / 3, "ndcg@3": (ndcg_a3 + 1) / 3,
        "map@1": (1 / 2 + 1) / 3, "map@3": (5 / 6 + 1) / 3,
        "mrr@1": 2 / 3, "mrr@3": 2 / 3,
        "hit_rate@1": 2 / 3, "hit_rate@3": 2 / 3,
    }  # fmt: skip


def check_json_report(report: dict, rankings: str | None = None) -> None:
    assert report["k"] == [1, 3]
    assert set(report["metrics"]) == {f"{m}@{k}" for m in METRICS for k in (1, 3)}
    for name, value in expected_means().items():
        assert report["metrics"][name] == pytest.approx(value, abs=1e-12), name  # not rounded
    assert report["users"] == {
        "evaluated": 3,
        "missing_from_rankings": 1,
        "ranked_without_truth": 2,
    }
    assert "min(|R|, k)" in report["conventions"]
    if rankings is not None:
        assert report["sources"]["rankings"] == rankings


def test_render_json(result, inputs):
    text = render(result, "json")
    assert text.endswith("\n")
    check_json_report(json.loads(text), str(inputs[0]))


def markdown_rows(text: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]


def test_render_markdown(result):
    text = render(result, "markdown")
    rows = markdown_rows(text)
    assert rows[0] == ["metric", "@1", "@3"]
    assert all(set(cell) <= set("-:") and cell for cell in rows[1])  # the separator row
    assert len(rows[1]) == 3
    body = rows[2:]
    assert [row[0] for row in body] == [DISPLAY_NAMES[m] for m in METRICS]
    means = expected_means()
    for name, row in zip(METRICS, body, strict=True):
        assert row[1:] == [f"{means[f'{name}@1']:.4f}", f"{means[f'{name}@3']:.4f}"]
    assert text.rstrip("\n").splitlines()[-1] == ACCOUNTING + "."
    assert len(text.splitlines()) == 2 + len(METRICS) + 2  # header, rule, rows, blank, sentence


def test_render_table(result, inputs):
    text = render(result, "table")
    assert "\x1b[" not in text  # no colour codes
    # the title names the rankings file (rich may wrap it over several lines)
    assert f"llmrecevaluate{inputs[0]}" in "".join(text.split())
    means = expected_means()
    lines = text.splitlines()
    for name in METRICS:
        line = next(line for line in lines if f" {DISPLAY_NAMES[name]} " in line)
        assert f"{means[f'{name}@1']:.4f}" in line
        assert f"{means[f'{name}@3']:.4f}" in line
    assert "@1" in text and "@3" in text
    assert lines[-1] == ACCOUNTING


def evaluate_cli(inputs, *extra: str, cwd: Path | None = None):
    rankings, truth = inputs
    return run_cli("evaluate", rankings, "--truth", truth, "-k", "3,1", *extra, cwd=cwd)


def test_cli_output_json_is_inferred_from_the_ending(inputs, tmp_path):
    done = evaluate_cli(inputs, "-o", "report.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""
    assert b"report.json" in done.stderr
    check_json_report(json.loads((tmp_path / "report.json").read_text(encoding="utf-8")))


def test_cli_output_md_is_inferred_as_markdown(inputs, tmp_path):
    done = evaluate_cli(inputs, "-o", "report.md", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert markdown_rows(text)[0] == ["metric", "@1", "@3"]


def test_cli_json_to_stdout_is_only_json(inputs):
    done = evaluate_cli(inputs, "--format", "json")
    assert done.returncode == 0, done.stderr.decode()
    check_json_report(json.loads(done.stdout.decode()))  # nothing else on stdout


def test_cli_markdown_to_stdout(inputs):
    done = evaluate_cli(inputs, "--format", "markdown", "--quiet")
    assert done.returncode == 0, done.stderr.decode()
    text = done.stdout.decode()
    rows = markdown_rows(text)
    assert rows[0] == ["metric", "@1", "@3"]
    assert [row[0] for row in rows[2:]] == [DISPLAY_NAMES[m] for m in METRICS]
    assert ACCOUNTING in text
    assert done.stderr == b""


def test_cli_table_goes_to_stdout_and_accounting_to_stderr(inputs):
    done = evaluate_cli(inputs)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    means = expected_means()
    line = next(line for line in out.splitlines() if " NDCG " in line)
    assert f"{means['ndcg@1']:.4f}" in line and f"{means['ndcg@3']:.4f}" in line
    assert "\x1b[" not in out  # not a terminal: no colour codes
    assert ACCOUNTING in done.stderr.decode()
    quiet = evaluate_cli(inputs, "--quiet")
    assert quiet.stdout == done.stdout
    assert quiet.stderr == b""


def test_cli_bad_format_exits_2(inputs):
    done = evaluate_cli(inputs, "--format", "html")
    assert done.returncode == 2
    assert done.stdout == b""
    assert b"--format 'html'" in done.stderr
