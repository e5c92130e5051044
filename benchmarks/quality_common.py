"""What benchmarks/quality.py and quality_peers.py share: running the CLI, the cache of outputs
keyed by their inputs, and the tables (plain text for stdout, Markdown for QUALITY.md)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "quality_out"
LLMREC = str(Path(sys.executable).with_name("llmrec"))

K = 10
NDCG = f"ndcg@{K}"
RECALL = f"recall@{K}"
COVERAGE = f"coverage@{K}"
NOVELTY = f"novelty@{K}"

STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def llmrec(*args: str, capture: bool = False) -> str:
    """Run the CLI (quietly); return its stdout when captured. Fails loudly on a non-zero exit."""
    result = subprocess.run(
        [LLMREC, *args, "--quiet"], check=True, text=True, capture_output=capture
    )
    return result.stdout if capture else ""


def evaluate(rankings: list[Path], truth: Path, *extra: str) -> dict:
    """One `llmrec evaluate` call (JSON): the first ranking is the reference of the tests."""
    text = llmrec(
        "evaluate", *map(str, rankings), "--truth", str(truth), "-k", str(K), "-f", "json", *extra,
        capture=True,
    )  # fmt: skip
    return json.loads(text)


def split(interactions: Path, history: Path, heldout: Path) -> None:
    history.parent.mkdir(parents=True, exist_ok=True)
    llmrec("split", str(interactions), "--history-out", str(history), "--heldout-out", str(heldout))


# ---- the cache: an output is reused only while everything it was made from is unchanged ----


def sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, sorted)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else "").encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def code_sha256(folder: Path) -> str:
    """sha256 of the Python sources under `folder` (a changed llmrec retrains, retunes)."""
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*.py")):
        digest.update(str(file.relative_to(folder)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def cached(
    stamp: Path, inputs: dict, outputs: list[Path], make: Callable[[], dict], label: str
) -> dict:
    """`make()`'s result (a JSON-able dict), or the one stored in `stamp` when the stamp was
    written for the same `inputs` and every output still exists. Adds "cached": bool."""
    if stamp.is_file() and all(path.exists() for path in outputs):
        saved = json.loads(stamp.read_text())
        if saved.get("inputs") == inputs:
            log(f"  {label}: cached ({stamp.relative_to(ROOT)})")
            return {**saved["result"], "cached": True}
    stamp.unlink(missing_ok=True)
    result = make()
    stamp.write_text(json.dumps({"inputs": inputs, "result": result}, indent=2) + "\n")
    return {**result, "cached": False}


# ---- tables ----


def fmt_ci(run: dict, key: str) -> str:
    value = run["metrics"][key]
    ci = run.get("ci", {}).get(key)
    return f"{value:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else f"{value:.4f}"


def fmt_p(p: float) -> str:
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


def p_is(p: float) -> str:
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.4f}"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def gain(value: float, reference: float) -> float:
    return 100 * (value - reference) / reference if reference else float("inf")


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


class Output:
    """Everything printed to stdout, kept also as Markdown for quality_out/QUALITY.md."""

    def __init__(self) -> None:
        self.markdown: list[str] = []

    def heading(self, text: str) -> None:
        print(f"\n=== {text} ===", flush=True)
        self.markdown.append(f"\n### {text}\n")

    def text(self, text: str) -> None:
        print(text, flush=True)
        self.markdown.append(text + "  ")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        print(text_table(header, rows), flush=True)
        self.markdown.append("\n" + markdown_table(header, rows) + "\n")
