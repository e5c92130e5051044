"""The house rules of the package, checked from its source.

- Imports run one way: cli → stages (embedding, profiles, ranking, evaluation, the API) →
  {engine, io, data} → errors. Every import counts, also those inside functions (which hide
  cycles from Python but not from a reader).
- No cycles between modules, and no module imports another module's `_private` name.
- Modules stay small enough to read.
- The repository keeps no large files: data comes from ../shared or is generated.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "llmrec"
MAX_LINES = 400
LAYERS = {
    "__main__": 3,
    "cli": 3,
    "stages": 2,
    "engine": 1,
    "io": 1,
    "data": 1,
    "options": 1,
    "errors": 0,
    "version": 0,
}
STAGES = {"embedding", "profiles", "ranking", "evaluation", "tuning", "api", "sequential"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an `from ... import` names."""
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports() -> list[tuple[str, str, str | None]]:
    """(importer, imported module, imported name or None) for every llmrec import."""
    known = modules()
    found = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(name, a.name, None) for a in node.names if a.name.startswith("llmrec")]
            elif isinstance(node, ast.ImportFrom):
                target = resolve(name, path.name == "__init__.py", node)
                if not target.startswith("llmrec"):
                    continue
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    if submodule in known:
                        found.append((name, submodule, None))
                    else:
                        found.append((name, target, alias.name))
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return LAYERS["stages"]  # the package itself: the public API over the stages
    top = parts[1]
    return LAYERS["stages"] if top in STAGES else LAYERS[top]


def test_no_import_cycles():
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for importer, imported, _ in imports():
        if imported in graph and imported != importer:
            graph[importer].add(imported)
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" → ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_run_one_way():
    wrong = [
        f"{importer} imports {imported}"
        for importer, imported, _ in imports()
        if layer(imported) > layer(importer)
    ]
    assert not wrong, "imports against the layers (cli → stages → engine/io/data → errors):\n" + (
        "\n".join(wrong)
    )


def test_nothing_inside_imports_the_package_facade():
    facade = [f"{i} imports llmrec" for i, imported, _ in imports() if imported == "llmrec"]
    assert not facade, "\n".join(facade)


def test_no_module_imports_another_modules_private_names():
    private = [
        f"{importer} imports {imported}.{name}"
        for importer, imported, name in imports()
        if name and name.startswith("_") and not name.startswith("__") and imported != importer
    ]
    assert not private, "\n".join(private)


def test_no_stage_is_named_like_a_verb():
    """`llmrec.rank` and friends are functions of the API, so no module may take those names."""
    verbs = {"embed", "profile", "rank", "evaluate", "split", "tune", "train"}
    clashing = [name for name in modules() if name.split(".")[-1] in verbs]
    assert not clashing, clashing


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_stay_readable(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines; split it by concern"


def test_no_large_tracked_files():
    """Clones stay small: no tracked file over 1 MiB outside sample_data/ (data lives in
    ../shared or is generated by the tests and benchmarks)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    large = [
        f"{name.decode()} ({(ROOT / name.decode()).stat().st_size / 2**20:.1f} MiB)"
        for name in listed
        if name
        and not name.startswith(b"sample_data/")
        and (ROOT / name.decode()).is_file()
        and (ROOT / name.decode()).stat().st_size > 2**20
    ]
    assert not large, large


def test_setuptools_finds_every_package_folder():
    """A folder without __init__.py imports here (a namespace package) but is left out of a
    wheel; every folder of modules must be a package that `pip install .` ships."""
    from setuptools import find_packages

    found = set(find_packages(str(ROOT), include=["llmrec*"]))
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("*.py")}
    assert folders <= found, sorted(folders - found)
