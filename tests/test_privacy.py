"""All processing is local: the whole pipeline runs with every network socket refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCK_SOCKETS = """
import socket

class _NoNetwork(socket.socket):
    def __init__(self, family=-1, *args, **kwargs):
        if family in (socket.AF_INET, socket.AF_INET6):
            raise OSError("network access attempted: llmrec must work offline")
        super().__init__(family, *args, **kwargs)

socket.socket = _NoNetwork
socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(OSError("network access attempted"))
"""


@pytest.mark.slow
def test_pipeline_runs_with_the_network_blocked(tmp_path, sample_items, sample_interactions):
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(BLOCK_SOCKETS)
    env = {**os.environ, "PYTHONPATH": str(guard)}
    env.pop("HF_HUB_OFFLINE", None)  # llmrec must stay offline by itself
    exe = str(Path(sys.executable).with_name("llmrec"))

    def run(*args):
        result = subprocess.run([exe, *map(str, args)], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result

    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('1.1.1.1', 80))"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "network access attempted" in probe.stderr  # the guard is active
    run(
        "split",
        sample_interactions,
        "--history-out",
        tmp_path / "h.csv",
        "--heldout-out",
        tmp_path / "t.csv",
    )
    run("embed", sample_items, "-o", tmp_path / "i.parquet")
    run(
        "rank",
        "--user-history",
        tmp_path / "h.csv",
        "--items",
        tmp_path / "i.parquet",
        "--blend",
        "text=1,cooc=1",
        "-o",
        tmp_path / "r.csv",
    )
    report = run("evaluate", tmp_path / "r.csv", "--truth", tmp_path / "t.csv", "-f", "json")
    assert '"ndcg@10"' in report.stdout
