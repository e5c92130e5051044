"""A run killed at any moment leaves its output path holding the complete previous file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

EXE = str(Path(sys.executable).with_name("llmrec"))
RANDOM_TRIALS = 3


def kill_while_writing(args: list[str], output: Path) -> float:
    """Start `args` and SIGKILL it the moment its temp file appears beside `output`, that is
    while the output is being written; the seconds it ran (to then, or to its end if it
    finished first)."""
    started = time.monotonic()
    process = subprocess.Popen([EXE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prefix = f".{output.name}.{process.pid}."  # this run's temp file, not a dead run's
    while process.poll() is None and not any(
        name.startswith(prefix) for name in os.listdir(output.parent)
    ):
        pass  # no sleep: the temp file of a small output lives for a millisecond or so
    reached = time.monotonic() - started
    process.send_signal(signal.SIGKILL)  # nothing happens if it has ended
    process.wait()
    return reached


def kill_at_random_moments(args: list[str], output: Path, seed: int) -> None:
    """Run `args` again and again, SIGKILL each run at a chosen moment, check `output`.

    A kill can land in three places, each with its own outcome: in start-up, reading and
    computing (the output is not touched yet), while the temp file is written (it is left
    behind, the output must still be the old file, and the next run removes the temp file),
    or after the rename (the output is the new, equal file). Start-up (Python, torch, the
    model) is most of a run, so of the 10 moments per command drawn from a fixed 0.05-2.5 s
    that this test used to take, most fell in start-up (all of them on a busy machine) or
    after a short run had ended, and the temp file was hit by chance if at all. Now the
    first run of each command is killed the moment its temp file appears, the case that
    matters (embed's and rank's are caught nearly every time; evaluate's small report lives
    for well under a millisecond and is mostly missed, and then the run ends whole), and
    RANDOM_TRIALS = 3 more at seeded moments before the point that first run reached, so
    that they fall in start-up, reading or computing wherever the run spends its time,
    whatever the machine's speed.
    """
    previous = output.read_bytes()
    reached = kill_while_writing(args, output)
    assert output.read_bytes() == previous  # never partial: the old file or the new, equal one
    rng = random.Random(seed)
    for _ in range(RANDOM_TRIALS):
        process = subprocess.Popen(
            [EXE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:  # a run that ends before its moment is not waited for past its end
            process.wait(timeout=rng.uniform(0.05, 1.0) * reached)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert output.read_bytes() == previous


@pytest.mark.extended
@pytest.mark.slow
@pytest.mark.serial  # killed by the clock: alone on the machine, so moments fall where measured
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


@pytest.mark.extended
@pytest.mark.slow
def test_embed_killed_again_and_again_resumes_to_the_same_rows(tmp_path, tiny_bert, sample_items):
    import pandas as pd

    from llmrec.io.vectors import read_vectors

    base = pd.read_csv(sample_items, dtype=str)
    items = tmp_path / "items.csv"  # 600 items, encoded one at a time: a few seconds of work
    pd.concat(
        [
            base.assign(item_id=base.item_id + f"-{n}", title=base.title + f" v{n}")
            for n in range(10)
        ]
    ).to_csv(items, index=False)

    def embed(output: Path) -> list[str]:
        return ["embed", str(items), "--model", str(tiny_bert), "-o", str(output),
                "--chunk-rows", "25", "--batch-size", "1"]  # fmt: skip

    reference = tmp_path / "reference.parquet"
    assert run_cli(*embed(reference)).returncode == 0

    # kill each run at a random point of its progress: once it has finished 1–5 more chunks
    output, rng = tmp_path / "out.parquet", random.Random(7)
    chunks = tmp_path / ".out.parquet.chunks"
    kept = 0
    for _ in range(2):
        goal = kept + rng.randint(1, 5)
        process = subprocess.Popen([EXE, *embed(output)], stderr=subprocess.DEVNULL)
        while process.poll() is None and len(list(chunks.glob("chunk-*.npy"))) < goal:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not output.exists()
        kept = len(list(chunks.glob("chunk-*.npy")))
        assert kept >= goal
    finished = run_cli(*embed(output))
    assert finished.returncode == 0
    assert f"{kept} finished chunks resumed" in finished.stderr.decode()
    a, b = read_vectors(str(output)), read_vectors(str(reference))
    assert a.ids.tolist() == b.ids.tolist()
    assert a.extra["text_hash"].tolist() == b.extra["text_hash"].tolist()
    np.testing.assert_array_equal(a.vectors, b.vectors)  # same chunks, same batches: same bits
    assert not (tmp_path / ".out.parquet.chunks").exists()
    assert [p.name for p in tmp_path.glob(".*.tmp")] == []


def test_ctrl_c_exits_130_in_one_line_and_keeps_finished_chunks(tmp_path, tiny_bert):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n" + "".join(f"I{n},lamp number {n}\n" for n in range(50_000)))
    output, chunks = tmp_path / "out.parquet", tmp_path / ".out.parquet.chunks"
    args = ["embed", str(items), "--model", str(tiny_bert), "-o", str(output),
            "--chunk-rows", "50", "--batch-size", "1"]  # fmt: skip
    # a job started in the background by a shell inherits SIGINT ignored: undo that, as a
    # terminal's Ctrl-C would find it
    process = subprocess.Popen(
        [EXE, *args],
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    while process.poll() is None and not list(chunks.glob("chunk-*.npy")):
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.decode().splitlines() == ["llmrec: interrupted"]
    assert not output.exists()
    assert list(chunks.glob("chunk-*.npy"))  # the next run starts from these
    assert [p.name for p in tmp_path.glob(".*.tmp")] == []


@pytest.mark.extended  # make test-all: keeps make test within 8 minutes
def test_concurrent_runs_on_one_output_end_with_one_complete_file(
    tmp_path, tiny_bert, sample_items, sample_interactions
):
    from llmrec.io.vectors import read_vectors

    items, rankings = tmp_path / "items.parquet", tmp_path / "r.csv"
    commands = {
        items: ["embed", str(sample_items), "--model", str(tiny_bert), "-o", str(items)],
        rankings: [
            "rank",
            "--user-history",
            str(sample_interactions),
            "--items",
            str(items),
            "-o",
            str(rankings),
        ],
    }
    for output, args in commands.items():
        runs = [subprocess.Popen([EXE, *args], stderr=subprocess.PIPE) for _ in range(2)]
        assert [run.wait() for run in runs] == [0, 0], [r.stderr.read() for r in runs]
        solo = tmp_path / f"solo{output.suffix}"
        assert run_cli(*[solo if a == str(output) else a for a in args]).returncode == 0
        if output == items:
            a, b = read_vectors(str(output)), read_vectors(str(solo))
            assert a.ids.tolist() == b.ids.tolist()
            np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)
        else:
            assert output.read_bytes() == solo.read_bytes()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temp files, no chunk folders
