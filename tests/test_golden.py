"""The sample dataset's golden outputs (benchmarks/golden.py check): every command's files are
byte-identical to the recorded manifest, on this CPU and with its kernels limited to AVX2 (as
on a CPU without AVX-512). Ray cases are left to `golden.py check` itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "benchmarks" / "golden.py"


AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
AVX2 |= {"OPENBLAS_CORETYPE": "Haswell"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "kernels",
    [pytest.param({}, id="native"), pytest.param(AVX2, id="avx2", marks=pytest.mark.extended)],
)
def test_sample_outputs_match_the_golden_manifest(kernels):
    done = subprocess.run(
        [sys.executable, str(GOLDEN), "check", "--data", "sample", "--no-ray"],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | kernels,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "match" in done.stdout.splitlines()[-1]
