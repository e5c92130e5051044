"""Errors meant for people: one line that names the file, column or row and what to do, with
options named the way the command line spells them (`flag`)."""

from __future__ import annotations

#: Exit codes shared by every subcommand.
EXIT_OK = 0
EXIT_FAILURE = 1  # something broke that the user's input did not cause
EXIT_BAD_INPUT = 2  # bad usage or bad data: the message says what to change


# Fields whose command-line name is not "--" + the field with dashes.
_FLAG_NAMES = {
    "k": "-k",
    "diversify_strength": "--diversify",
    "exclude_seen": "--include-seen",
    "text_col": "--history-text-col",
    "history_path": "--user-history",
    "users_path": "--users",
    "items_path": "--items",
    "template": "--text",
    "reuse_output": "--no-reuse",
    "resamples": "--bootstrap",
    "address": "--ray-address",
}


def flag(name: str) -> str:
    """The command-line name of the option that sets field `name` (`half_life` → `--half-life`)."""
    return _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


class LlmrecError(Exception):
    """A failure the user can fix; the CLI prints the message on one line and exits with `exit_code`."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()) if "\n" in message else message)


class InputError(LlmrecError):
    """Bad usage or bad data (exit 2)."""


class ModelError(LlmrecError):
    """A model folder or hub id that cannot be used as asked (exit 2)."""


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its type's name if it has none)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip()[:300] if lines else type(exc).__name__
