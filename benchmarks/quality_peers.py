"""The peers of `make quality`, each run with the peers' own Python (.venv-peers, `make peers`),
never imported into llmrec's environment: today RecTools' SASRec (benchmarks/peers/)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from quality_common import ROOT, cached, log, sha256

PEERS = ROOT / ".venv-peers"
PEERS_PYTHON = PEERS / "bin" / "python"
SASREC = ROOT / "benchmarks" / "peers" / "rectools_sasrec.py"


def peers_ready() -> bool:
    return (PEERS / ".installed").is_file() and PEERS_PYTHON.is_file()


def installed() -> list[str]:
    """The peers' installed distributions (name-version), for the cache key."""
    return sorted(p.name for p in PEERS.glob("lib/python*/site-packages/*.dist-info"))


def rectools_sasrec(
    history: Path,
    inner_history: Path,
    inner_heldout: Path,
    folder: Path,
    *,
    max_epochs: int,
    patience: int,
    time_budget: float,
) -> dict:
    """Train RecTools' SASRec on `history` (epochs chosen on the inner split) and write its
    top 10 per user to folder/rankings.csv; return its summary (+ "seconds", "cached")."""
    folder.mkdir(parents=True, exist_ok=True)
    rankings, summary, trace = folder / "rankings.csv", folder / "summary.json", folder / "log.txt"
    args = [
        str(history),
        "--inner-history", str(inner_history),
        "--inner-heldout", str(inner_heldout),
        "-o", str(rankings),
        "--summary", str(summary),
        "--max-epochs", str(max_epochs),
        "--patience", str(patience),
        "--time-budget", f"{time_budget:g}",
    ]  # fmt: skip
    inputs = {
        "args": args,
        "files": [sha256(path) for path in (history, inner_history, inner_heldout, SASREC)],
        "installed": installed(),
    }

    def make() -> dict:
        import json

        started = time.perf_counter()
        with open(trace, "w", encoding="utf-8") as handle:
            done = subprocess.run(
                [str(PEERS_PYTHON), str(SASREC), *args], stdout=handle, stderr=subprocess.STDOUT
            )
        if done.returncode != 0:
            tail = trace.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"RecTools SASRec failed (exit {done.returncode}):\n{tail}")
        return {**json.loads(summary.read_text()), "seconds": time.perf_counter() - started}

    log("  RecTools SASRec: training (epochs chosen on the inner split) ...")
    result = cached(folder / "stamp.json", inputs, [rankings, summary], make, "RecTools SASRec")
    log(
        f"  RecTools SASRec: {result['best_epoch']} epochs, {result['seconds']:.0f} s "
        f"(search {result['search_seconds']:.0f} s, final fit {result['fit_seconds']:.0f} s)"
    )
    return result
