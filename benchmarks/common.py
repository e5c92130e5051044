"""What every benchmark shares: the machine's description, peak memory, child runs, targets.

Each contender runs in a fresh child process (`run_child`), so that its peak RSS is its own and
imports are not timed. A benchmark states each target of the performance brief with `target()`,
which prints one line starting with `target:`; `benchmarks/run.py` gathers those lines into the
closing summary of `make bench`.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def peak_rss_kib() -> int:
    """Peak resident memory of this process, in KiB.

    VmHWM, where Linux has it: ru_maxrss survives exec, so in a child it is at least the RSS
    of the parent that spawned it.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_kib() -> int:
    """Current resident memory of this process, in KiB (0 where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def machine() -> str:
    """CPU model, usable cores and Python version, for the head of every report."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, Python {platform.python_version()}"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def run_child(script: str, *args: str) -> dict:
    """Run `python script --child args…` and return the JSON object of its last stdout line."""
    command = [sys.executable, script, "--child", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(
            f"{Path(script).name}: the child run {args} failed (exit {done.returncode})"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def report_child(result: dict) -> None:
    """Print a child's result as the one JSON line `run_child` reads."""
    print(json.dumps(result), flush=True)


def target(name: str, value: float, limit: float, unit: str = "×", *, at_most: bool = True) -> bool:
    """Print one `target:` line (measured value against the brief's limit); return whether met.

    `at_most` says the value must be ≤ limit (times, memory, ratios of time); otherwise ≥
    (throughput ratios, agreement).
    """
    met = value <= limit if at_most else value >= limit
    sign = "≤" if at_most else "≥"
    print(
        f"target: {name}: {value:.4g}{unit} (target {sign} {limit:g}{unit}) "
        f"{'MET' if met else 'NOT MET'}",
        flush=True,
    )
    return met
