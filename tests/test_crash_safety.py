"""A run killed at any moment leaves its output path holding the complete previous file."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli

EXE = str(Path(sys.executable).with_name("llmrec"))
TRIALS = 10


def kill_at_random_moments(args: list[str], output: Path, seed: int) -> None:
    """Run `args` again and again, SIGKILL each run at a random moment, check `output`."""
    previous = output.read_bytes()
    rng = random.Random(seed)
    for _ in range(TRIALS):
        process = subprocess.Popen(
            [EXE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.05, 2.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert output.read_bytes() == previous  # never partial: the old file or the new, equal one


@pytest.mark.slow
def test_killed_embed_rank_and_evaluate_never_leave_a_partial_output(
    tmp_path, tiny_bert, sample_items, sample_interactions
):
    history, heldout = tmp_path / "h.csv", tmp_path / "t.csv"
    assert (
        run_cli(
            "split", sample_interactions, "--history-out", history, "--heldout-out", heldout
        ).returncode
        == 0
    )
    items, rankings, report = tmp_path / "i.parquet", tmp_path / "r.csv", tmp_path / "report.json"
    commands = {
        items: ["embed", str(sample_items), "--model", str(tiny_bert), "-o", str(items)],
        rankings: [
            "rank",
            "--user-history",
            str(history),
            "--items",
            str(items),
            "-o",
            str(rankings),
        ],
        report: ["evaluate", str(rankings), "--truth", str(heldout), "-o", str(report)],
    }
    for args in commands.values():
        assert run_cli(*args).returncode == 0
    for seed, (output, args) in enumerate(commands.items()):
        kill_at_random_moments(args, output, seed)
        assert run_cli(*args).returncode == 0  # the next run cleans up and succeeds
        leftovers = [p.name for p in tmp_path.glob(f".{output.name}.*.tmp")]
        assert leftovers == []
