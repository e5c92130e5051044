"""The sample dataset's golden outputs (benchmarks/golden.py check): every command's files are
byte-identical to the recorded manifest. Ray cases are left to `golden.py check` itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "benchmarks" / "golden.py"


@pytest.mark.slow
def test_sample_outputs_match_the_golden_manifest():
    done = subprocess.run(
        [sys.executable, str(GOLDEN), "check", "--data", "sample", "--no-ray"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "match" in done.stdout.splitlines()[-1]
