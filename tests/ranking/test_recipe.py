"""What `rank` does when it is told no recipe: the recommended one when it profiles users from
a history, plain text similarity otherwise, and a one-line hint to tune."""

from __future__ import annotations

import pytest

import llmrec
from conftest import run_cli

RECIPE = [
    "--strategy", "decay", "--half-life", "1",
    "--blend", "text=0.25,cooc=1,ease=0.5,pop=0.1", "--ease-lambda", "100",
]  # fmt: skip
PLAIN = ["--strategy", "mean", "--blend", "text=1"]


@pytest.fixture(scope="module")
def ranked(sample_embedded, sample_interactions, tmp_path_factory):
    """rank (-o -) of the sample history, by the arguments given: stdout bytes and stderr.
    Each distinct command runs once (the tests here share its output)."""
    items, _ = sample_embedded
    folder = tmp_path_factory.mktemp("recipe")
    done_before: dict[tuple[str, ...], tuple[bytes, str]] = {}

    def run(*args: str) -> tuple[bytes, str]:
        key = tuple(map(str, args))
        if key not in done_before:
            done = run_cli("rank", "--items", items, "-k", "10", "-o", "-", *key, cwd=folder)
            assert done.returncode == 0, done.stderr.decode()
            done_before[key] = done.stdout, done.stderr.decode()
        return done_before[key]

    return run


def test_untold_rank_from_a_history_uses_the_recommended_recipe(ranked, sample_interactions):
    untold, note = ranked("--user-history", sample_interactions)
    told, told_note = ranked("--user-history", sample_interactions, *RECIPE)
    assert untold == told
    assert untold != ranked("--user-history", sample_interactions, *PLAIN)[0]
    summary, hint = note.strip().splitlines()
    assert summary.endswith("the recommended recipe")
    assert hint.startswith("llmrec rank: hint: 'llmrec tune ") and "rank --config" in hint
    assert "recommended" not in told_note and "hint" not in told_note


def test_any_scoring_option_keeps_the_plain_defaults(ranked, sample_interactions):
    plain, _ = ranked("--user-history", sample_interactions, *PLAIN)
    # a blend alone keeps the mean profile; a strategy alone keeps text similarity
    assert ranked("--user-history", sample_interactions, "--blend", "text=1")[0] == plain
    assert ranked("--user-history", sample_interactions, "--strategy", "mean")[0] == plain
    # --fast scores text alone, so it keeps the plain defaults (same lists on this catalog)
    fast, note = ranked("--user-history", sample_interactions, "--fast")
    assert fast.splitlines()[0] == plain.splitlines()[0] and "hint" not in note
    assert [line.split(b",")[:3] for line in fast.splitlines()] == [
        line.split(b",")[:3] for line in plain.splitlines()
    ]


def test_given_user_vectors_rank_by_text(ranked, sample_embedded, sample_interactions, tmp_path):
    items, _ = sample_embedded
    users = tmp_path / "users.parquet"
    done = run_cli("profile", sample_interactions, "--items", items, "-o", users, "--quiet")
    assert done.returncode == 0, done.stderr.decode()
    given, note = ranked("--users", users, "--user-history", sample_interactions)
    assert given == ranked("--user-history", sample_interactions, *PLAIN)[0]
    assert "hint" not in note


def test_quiet_hides_the_hint(ranked, sample_interactions):
    _, note = ranked("--user-history", sample_interactions, "--quiet")
    assert note == ""


def test_the_api_chooses_as_the_command(ranked, sample_embedded, sample_interactions, tmp_path):
    items, _ = sample_embedded
    output = tmp_path / "api.csv"
    result = llmrec.rank(str(items), str(output), history=str(sample_interactions), k=10)
    assert result.recommended
    assert output.read_bytes() == ranked("--user-history", sample_interactions)[0]
    plain = llmrec.rank(
        str(items), str(tmp_path / "plain.csv"), history=str(sample_interactions), k=10,
        blend={"text": 1.0},
    )  # fmt: skip
    assert not plain.recommended
