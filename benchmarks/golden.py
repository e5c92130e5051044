"""Golden outputs: every llmrec command's files, frozen as sha256, so a refactor can be checked
byte for byte.

Why: the CLI must behave identically across restructures (moving modules, splitting files). This
script runs a fixed list of named cases through the CLI in this process (`llmrec.cli.app` in
standalone mode, exactly what the console script runs) on two datasets, and records the sha256
of every file each case writes: its output files, what it printed on stdout (`stdout.*`) and
on stderr (`stderr.txt`: the summary lines, with seconds replaced by `<t>`; for Ray cases only
the lines starting with `llmrec`, as Ray's processes share the stream).

- `sample` (sample_data/): split (leave-last, temporal), embed, info, profile (mean, decay),
  rank in every mode (users, history, --fast, blends, --explain, --diversify, --interests,
  baselines, --include-seen, --engine ray), evaluate (table, json, markdown, --ci,
  beyond-accuracy, two runs compared, --per-user as Parquet and CSV).
- `movielens` (../shared/data/movielens-small, skipped when absent): split, embed, profile,
  rank (plain, --fast, blend, --explain, --diversify, popular, --engine ray), evaluate.

Each dataset runs in DIR/<dataset>/ with that folder as the working directory: inputs are copied
to input/, case C writes into C/, and every path on a command line is relative, so no output
(report `sources`, per-user `run` column, summaries) holds the output folder's name; no output
holds a time or host name either (Parquet metadata is llmrec's and pyarrow's). Later cases
read earlier cases' files (one embed per dataset). A transformer's float32 output depends on
the CPU's kernels (AVX-512 and AVX2 differ in the last bits), so where a frozen item table is
committed (benchmarks/golden/sample-items.parquet) the embed case is checked against it within
1e-5 and every later case reads the frozen table: then the sample hashes hold on any x86 CPU
(tests/test_golden.py checks them again with the kernels limited to AVX2:
ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2, OPENBLAS_CORETYPE=Haswell), because
blends, EASE and the paired tests compute in float64 and round once. movielens has no frozen table (15 MB), so its hashes are valid
for one machine and environment (CPU kind, torch, pyarrow); `compare` checks two kept folders
with a tolerance.

    python benchmarks/golden.py write   [--data sample|movielens|all] [--no-ray] [--out DIR]
    python benchmarks/golden.py check   [--data sample|movielens|all] [--no-ray] [--out DIR]
    python benchmarks/golden.py compare OLD_DIR NEW_DIR

`write` updates benchmarks/golden/manifest.json (`files`: {dataset: {case: {file: sha256}}},
`argv`: {dataset: {case: argv}}) for the cases it ran; `check` prints one line per file that
differs from it and exits 1, or `golden: N files in M cases match` and exits 0. Ray cases (each
starts a local Ray) are skipped with --no-ray. Without --out the outputs go to a temp folder that
is removed; `compare` needs two folders kept with --out.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "benchmarks" / "golden" / "manifest.json"
DATA = {
    "sample": ROOT / "sample_data",
    "movielens": ROOT.parent / "shared" / "data" / "movielens-small",
}
MARKER = ".golden"  # marks a dataset folder this script made, so a rerun may clear it
TOLERANCE = 1e-6
VECTOR_TOLERANCE = 1e-5  # embedded vectors against the frozen table (unit vectors, float32)
SECONDS = re.compile(r"\b\d[\d,]*\.\d+ s\b")

# What the console script (`llmrec.cli:main`) sets, plus what would colour or reformat output.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
for name in ("LLMREC_LOG_FORMAT", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
    os.environ.pop(name, None)
# Test this checkout's llmrec (src/ layout or top-level package), also on Ray workers.
for folder in (ROOT / "src", ROOT):
    if (folder / "llmrec" / "__init__.py").is_file():
        sys.path.insert(0, str(folder))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(folder), os.environ.get("PYTHONPATH")) if p
        )
        break


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    _: KW_ONLY
    ray: bool = False  # starts a local Ray: skipped with --no-ray
    stdout: str = "stdout.txt"  # where what the command prints on stdout is kept


# Both datasets lay out their folder alike: input/ (copied), then one folder per case.
HISTORY, TRUTH, ITEMS, USERS = (
    "split/history.csv",
    "split/heldout.csv",
    "embed/items.parquet",
    "profile/users.parquet",
)


def split(name: str, *options: str) -> Case:
    outputs = ("--history-out", f"{name}/history.csv", "--heldout-out", f"{name}/heldout.csv")
    return Case(name, ("split", "input/interactions.csv", *options, *outputs))


def rank(name: str, *options: str, ray: bool = False) -> Case:
    """Top 10 of users profiled from the history, unless options say otherwise."""
    argv = ("rank", "--user-history", HISTORY, "--items", ITEMS, "-k", "10", *options)
    return Case(name, (*argv, "-o", f"{name}/rankings.csv"), ray=ray)


def evaluate(name: str, runs: tuple[str, ...], *options: str) -> Case:
    """Evaluate the rankings of the cases `runs` (the first is the reference)."""
    fmt = options[options.index("--format") + 1] if "--format" in options else "table"
    stdout = "stdout." + {"json": "json", "markdown": "md"}.get(fmt, "txt")
    paths = tuple(f"{run}/rankings.csv" for run in runs)
    return Case(name, ("evaluate", *paths, "--truth", TRUTH, *options), stdout=stdout)


def sample_cases() -> list[Case]:
    text = ("--text", "{title}. {description}")
    plain, pair, json_ = ("rank-users",), ("rank-users", "rank-blend"), ("--format", "json")
    return [
        split("split"),
        split("split-temporal", "--strategy", "temporal", "--fraction", "0.2"),
        Case("embed", ("embed", "input/items.csv", *text, "-o", ITEMS)),
        Case(
            "embed-ray",
            ("embed", "input/items.csv", *text, "-o", "embed-ray/items")
            + ("--engine", "ray", "--concurrency", "2"),  # fixed workers: fixed shards
            ray=True,
        ),
        Case("info", ("info", ITEMS, "--format", "json"), stdout="stdout.json"),
        Case("profile", ("profile", HISTORY, "--items", ITEMS, "-o", USERS)),
        Case(
            "profile-decay",
            ("profile", HISTORY, "--items", ITEMS, "--strategy", "decay", "--half-life", "3")
            + ("-o", "profile-decay/users.parquet"),
        ),
        Case("info-users", ("info", USERS, "--format", "json"), stdout="stdout.json"),
        rank("rank-users", "--users", USERS),
        rank("rank-history"),
        rank("rank-fast", "--fast"),
        rank("rank-blend", "--blend", "text=1,cooc=0.5,ease=0.5,pop=0.1", "--ease-lambda", "100"),
        rank("rank-explain", "--explain"),
        rank(
            "rank-blend-explain",
            *("--strategy", "decay", "--half-life", "1", "--blend", "text=0.5,cooc=1", "--explain"),
        ),
        rank("rank-diversify", "--diversify", "0.5"),
        rank("rank-interests", "--interests", "3"),
        rank("rank-popular", "--baseline", "popular"),
        rank("rank-random", "--baseline", "random", "--seed", "1"),
        rank("rank-include-seen", "--include-seen"),
        rank("rank-ray", "--engine", "ray", ray=True),
        rank("rank-ray-fast", "--engine", "ray", "--fast", ray=True),
        evaluate("evaluate-table", plain, "-k", "5,10"),
        evaluate("evaluate-json", plain, *json_),
        evaluate("evaluate-markdown", plain, "--format", "markdown"),
        evaluate("evaluate-ci", plain, "--ci", "--bootstrap", "200", "--seed", "0", *json_),
        evaluate(
            "evaluate-beyond", plain, "-k", "10", "--items", ITEMS, "--train", HISTORY, *json_
        ),
        evaluate("compare-json", pair, *json_),
        evaluate("compare-markdown", pair, "-o", "compare-markdown/report.md"),
        evaluate("per-user-parquet", pair, "--per-user", "per-user-parquet/per_user.parquet"),
        evaluate("per-user-csv", pair, "--per-user", "per-user-csv/per_user.csv"),
    ]


def movielens_cases() -> list[Case]:
    plain, three = ("rank-users",), ("rank-users", "rank-blend", "rank-popular")
    return [
        split("split"),
        Case("embed", ("embed", "input/items.csv", "--text", "{title}. {genres}", "-o", ITEMS)),
        Case("profile", ("profile", HISTORY, "--items", ITEMS, "-o", USERS)),
        rank("rank-users", "--users", USERS),
        rank("rank-fast", "--fast"),
        rank(
            "rank-blend",
            *("--strategy", "decay", "--half-life", "3"),
            *("--blend", "text=0.25,cooc=1,ease=0.5,pop=0.1", "--ease-lambda", "100"),
        ),
        rank("rank-explain", "--explain"),
        rank("rank-diversify", "--diversify", "0.3"),
        rank("rank-popular", "--baseline", "popular"),
        rank("rank-ray", "--engine", "ray", ray=True),
        evaluate("evaluate-json", plain, "--format", "json"),
        evaluate("evaluate-markdown", plain, "--format", "markdown"),
        evaluate("compare-json", three, "--format", "json"),
        evaluate("compare-markdown", three, "--format", "markdown"),
    ]


CASES: dict[str, Callable[[], list[Case]]] = {"sample": sample_cases, "movielens": movielens_cases}


# --- running ------------------------------------------------------------------------------


def run_case(case: Case, folder: Path) -> None:
    """Run one case with `folder` (the dataset's) as working directory; keep its stdout and
    its summary lines in the case's own folder. Exits loudly if the command fails."""
    from llmrec.cli import app

    out = folder / case.name
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        code = _captured(lambda: _invoke(app, case.argv), stdout, stderr, folder)
        stdout.seek(0)
        stderr.seek(0)
        printed, messages = stdout.read(), stderr.read().decode("utf-8", "replace")
    if code != 0:
        sys.stderr.write(printed.decode("utf-8", "replace")[-2000:] + messages[-4000:])
        raise SystemExit(f"golden: case {case.name} exited {code}: llmrec {' '.join(case.argv)}")
    if printed:
        (out / case.stdout).write_bytes(printed)
    summary = [SECONDS.sub("<t> s", line) for line in messages.splitlines()]
    if case.ray:  # Ray's own processes may log here too
        summary = [line for line in summary if line.startswith("llmrec")]
    if summary:
        (out / "stderr.txt").write_text("\n".join(summary) + "\n", encoding="utf-8")


def _invoke(app, argv: tuple[str, ...]) -> int:
    """What the console script does: the app in standalone mode, which always exits."""
    try:
        app(args=list(argv), prog_name="llmrec")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _captured(call: Callable[[], int], stdout, stderr, cwd: Path) -> int:
    """Run `call` in `cwd` with file descriptors 1 and 2 sent to the given files, as a shell
    redirect would (so nothing is a terminal and Ray's processes write there too)."""
    saved, here = [os.dup(1), os.dup(2)], os.getcwd()
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(stdout.fileno(), 1)
    os.dup2(stderr.fileno(), 2)
    try:
        os.chdir(cwd)
        return call()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        os.chdir(here)


def run_dataset(dataset: str, out: Path, ray: bool) -> dict[str, dict[str, str]] | None:
    """Run a dataset's cases into out/<dataset>; {case: {file: sha256}}, None if no data."""
    source = DATA[dataset]
    if not (source / "interactions.csv").is_file():
        print(f"golden: {dataset}: skipped, {source} is absent", flush=True)
        return None
    folder = out / dataset
    if folder.exists():
        if any(folder.iterdir()) and not (folder / MARKER).exists():
            raise SystemExit(f"golden: {folder} holds other files; give an empty --out folder")
        shutil.rmtree(folder)
    (folder / "input").mkdir(parents=True)
    (folder / MARKER).touch()
    for name in ("interactions.csv", "items.csv"):
        shutil.copyfile(source / name, folder / "input" / name)
    hashes = {}
    started = time.perf_counter()
    for case in CASES[dataset]():
        if case.ray and not ray:
            continue
        begun = time.perf_counter()
        run_case(case, folder)
        if case.name == "embed" and frozen_items(dataset).is_file():
            settle_on_frozen_items(folder / ITEMS, frozen_items(dataset))
        hashes[case.name] = hash_folder(folder / case.name)
        print(f"golden: {dataset}/{case.name}: {time.perf_counter() - begun:.1f} s", flush=True)
    print(
        f"golden: {dataset}: {len(hashes)} cases in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return hashes


def frozen_items(dataset: str) -> Path:
    return MANIFEST.parent / f"{dataset}-items.parquet"


def settle_on_frozen_items(embedded: Path, frozen: Path) -> None:
    """Put the frozen item table in place of the one just embedded, if the two agree (same ids
    and metadata, vectors within VECTOR_TOLERANCE); else leave a file that names the gap.

    Why: a transformer's float32 output depends on the CPU's kernels (AVX-512 or AVX2 give
    other last bits), so the embed case is checked within a tolerance and every later case
    reads the same frozen vectors, which makes their bytes independent of the CPU."""
    import numpy as np

    from llmrec.io.vectors import read_meta, read_vectors

    here, there = read_vectors(str(embedded)), read_vectors(str(frozen))
    gap = (
        float(np.abs(here.vectors - there.vectors).max())
        if here.vectors.shape == there.vectors.shape
        else math.inf
    )
    same = here.ids.tolist() == there.ids.tolist() and read_meta(str(embedded)) == read_meta(
        str(frozen)
    )
    if same and gap <= VECTOR_TOLERANCE:
        shutil.copyfile(frozen, embedded)
    else:
        embedded.write_text(
            f"not the frozen table: same ids and metadata {same}, largest gap {gap}\n"
        )


def hash_folder(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def run_all(datasets: list[str], out: str | None, ray: bool) -> dict[str, dict]:
    """Run the datasets into --out (kept) or a temp folder (removed)."""
    import llmrec

    print(f"golden: checking {Path(llmrec.__file__).parent}", flush=True)
    folder = Path(out).resolve() if out else Path(tempfile.mkdtemp(prefix="golden."))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        results = {name: run_dataset(name, folder, ray) for name in datasets}
    finally:
        if not out:
            shutil.rmtree(folder, ignore_errors=True)
    return {name: hashes for name, hashes in results.items() if hashes is not None}


# --- write and check ----------------------------------------------------------------------


def load_manifest() -> dict:
    if MANIFEST.is_file():
        return json.loads(MANIFEST.read_text(encoding="utf-8"))
    return {"files": {}, "argv": {}}


def write(datasets: list[str], out: str | None, ray: bool) -> int:
    """Record the hashes of the cases run; entries of cases not run (Ray with --no-ray, a
    dataset that is absent) are kept; cases no longer defined are dropped."""
    results = run_all(datasets, out, ray)
    manifest = load_manifest()
    for dataset, hashes in results.items():
        cases = CASES[dataset]()
        old = manifest["files"].get(dataset, {})
        manifest["files"][dataset] = {
            c.name: hashes[c.name] if c.name in hashes else old[c.name]
            for c in cases
            if c.name in hashes or c.name in old
        }
        kept = manifest["files"][dataset]
        manifest["argv"][dataset] = {c.name: ["llmrec", *c.argv] for c in cases if c.name in kept}
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    files = sum(len(h) for hashes in results.values() for h in hashes.values())
    cases = sum(len(hashes) for hashes in results.values())
    print(f"golden: wrote {files} files in {cases} cases to {MANIFEST.relative_to(ROOT)}")
    return 0


def check(datasets: list[str], out: str | None, ray: bool) -> int:
    """Compare the cases run with the manifest: one line per differing file."""
    expected = load_manifest()["files"]
    results = run_all(datasets, out, ray)
    problems, files, cases = [], 0, 0
    for dataset, hashes in results.items():
        for case, found in hashes.items():
            want = expected.get(dataset, {}).get(case)
            if want is None:
                problems.append(f"{dataset}/{case}: not in the manifest (run write)")
                continue
            cases += 1
            for name in sorted(set(want) | set(found)):
                where = f"{dataset}/{case}/{name}"
                if name not in found:
                    problems.append(f"{where}: missing (expected {want[name][:12]})")
                elif name not in want:
                    problems.append(f"{where}: not expected (sha256 {found[name][:12]})")
                elif want[name] != found[name]:
                    problems.append(
                        f"{where}: sha256 {found[name][:12]}, expected {want[name][:12]}"
                    )
                else:
                    files += 1
    for line in problems:
        print(line)
    if problems:
        print(f"golden: {len(problems)} differences ({files} files in {cases} cases match)")
        return 1
    print(f"golden: {files} files in {cases} cases match")
    return 0


# --- compare ------------------------------------------------------------------------------


def compare(old: Path, new: Path) -> int:
    """Compare two kept output folders: rankings CSVs row by row with scores within 1e-6,
    JSON by structure with numbers within 1e-6, every other file byte for byte."""
    names = {
        p.relative_to(root).as_posix()
        for root in (old, new)
        for p in root.rglob("*")
        if p.is_file() and p.name != MARKER and "input" not in p.relative_to(root).parts[1:2]
    }
    problems = []
    for name in sorted(names):
        a, b = old / name, new / name
        if not a.is_file() or not b.is_file():
            problems.append(f"{name}: only in {old if a.is_file() else new}")
            continue
        left, right = a.read_bytes(), b.read_bytes()
        if left == right:
            continue
        if name.endswith(".json"):
            why = _json_difference(json.loads(left), json.loads(right), "")
        elif left.startswith(b"user_id,rank,item_id"):
            why = _rankings_difference(left.decode(), right.decode())
        else:
            why = "bytes differ"
        if why:
            problems.append(f"{name}: {why}")
    for line in problems:
        print(line)
    verdict = f"{len(problems)} files differ" if problems else "all files agree"
    print(f"golden: compared {len(names)} files: {verdict}")
    return 1 if problems else 0


def _rankings_difference(left: str, right: str) -> str | None:
    a, b = list(csv.reader(left.splitlines())), list(csv.reader(right.splitlines()))
    if a[0] != b[0] or len(a) != len(b):
        return f"header {a[0]} vs {b[0]}, {len(a) - 1} vs {len(b) - 1} rows"
    score = a[0].index("score") if "score" in a[0] else None
    for line, (x, y) in enumerate(zip(a[1:], b[1:], strict=True), start=2):
        same = [v for i, v in enumerate(x) if i != score] == [
            v for i, v in enumerate(y) if i != score
        ]
        if not same:
            return f"line {line}: {','.join(x)} vs {','.join(y)}"
        if score is not None and abs(float(x[score]) - float(y[score])) > TOLERANCE:
            return f"line {line}: score {x[score]} vs {y[score]}"
    return None


def _json_difference(a: object, b: object, where: str) -> str | None:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and bool not in (type(a), type(b)):
        close = math.isclose(a, b, rel_tol=0, abs_tol=TOLERANCE) or (a != a and b != b)
        return None if close else f"{where or '/'}: {a} vs {b}"
    if type(a) is not type(b):
        return f"{where or '/'}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where or '/'}: keys {list(a)} vs {list(b)}"
        pairs = [(f"{where}/{key}", a[key], b[key]) for key in a]
    elif isinstance(a, list):
        if len(a) != len(b):
            return f"{where or '/'}: {len(a)} vs {len(b)} entries"
        pairs = [(f"{where}/{i}", x, y) for i, (x, y) in enumerate(zip(a, b, strict=True))]
    else:
        return None if a == b else f"{where or '/'}: {a!r} vs {b!r}"
    for path, x, y in pairs:
        why = _json_difference(x, y, path)
        if why:
            return why
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    for mode in ("write", "check"):
        sub = modes.add_parser(mode)
        sub.add_argument("--data", choices=["sample", "movielens", "all"], default="all")
        sub.add_argument("--no-ray", action="store_true", help="skip the cases that start Ray")
        sub.add_argument("--out", help="run into this folder and keep it [default: a temp one]")
    sub = modes.add_parser("compare")
    sub.add_argument("old", type=Path)
    sub.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.mode == "compare":
        return compare(args.old, args.new)
    datasets = list(CASES) if args.data == "all" else [args.data]
    return (write if args.mode == "write" else check)(datasets, args.out, not args.no_ray)


if __name__ == "__main__":
    sys.exit(main())
