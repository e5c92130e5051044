"""Every command's --help ends with two examples; the examples run as written."""

from __future__ import annotations

import os
import shlex
import shutil

import pytest

from conftest import SAMPLE, run_cli
from llmrec.cli.examples import EXAMPLES

ORDER = ["split", "embed", "profile", "rank", "evaluate", "tune", "train", "info"]


@pytest.mark.parametrize("command", ORDER)
def test_help_ends_with_two_examples_of_the_command(command):
    done = run_cli(command, "--help", env={**os.environ, "COLUMNS": "400"})
    assert done.returncode == 0, done.stderr.decode()
    lines = [line.strip(" │") for line in done.stdout.decode().splitlines() if line.strip(" │")]
    assert lines[-3:] == ["Examples", *EXAMPLES[command]]
    for example in EXAMPLES[command]:
        words = shlex.split(example)
        assert words[:2] == ["llmrec", command]
        for word in words:  # every option an example uses is one of the command's
            if word.startswith("-") and word not in ("-o", "-k", "-q", "-f"):
                assert f" {word} " in done.stdout.decode(), (command, word)


@pytest.mark.extended
def test_every_example_runs_as_written_on_the_sample_data(tmp_path):
    for name in ("interactions.csv", "items.csv", "impressions.csv"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    for command in ORDER:
        for example in EXAMPLES[command]:
            quiet = [] if command == "info" else ["-q"]
            done = run_cli(*shlex.split(example)[1:], *quiet, cwd=tmp_path, timeout=600)
            assert done.returncode == 0, (example, done.stderr.decode())
