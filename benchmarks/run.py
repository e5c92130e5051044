"""Run every benchmarks/bench_*.py in turn with this Python; exit 1 if any of them fails.

Each benchmark's `target:` lines are repeated at the end, one summary of every target.

.venv/bin/python benchmarks/run.py     (what `make bench` runs)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    scripts = sorted(Path(__file__).resolve().parent.glob("bench_*.py"))
    if not scripts:
        print("benchmarks/run.py: no bench_*.py found", file=sys.stderr)
        return 1
    failed, targets = [], []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("target:"):
                targets.append(f"{script.stem.removeprefix('bench_')}: {line[7:].strip()}")
        code = process.wait()
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"== {script.name}: {status} in {time.perf_counter() - start:.0f} s\n", flush=True)
        if code != 0:
            failed.append(script.name)
    print("== targets")
    for line in targets:
        print(line)
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
