"""The README's Python API example runs as written and prints what the README shows."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def api_examples() -> list[tuple[str, str]]:
    """(code, shown output) of each ```python block of the README's "From Python, in a notebook" section that
    is followed by a ```text block."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### From Python", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", section, flags=re.S)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def test_the_readme_api_example_prints_what_the_readme_shows(tmp_path):
    examples = api_examples()
    assert examples, "no python example with its output in the README's From Python section"
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    for code, shown in examples:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert lines(done.stdout) == lines(shown)
