"""The config `tune` writes and `rank --config` reads: the chosen options under their
command-line names, what they scored, and the fingerprint of the history they were tuned on."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..errors import InputError
from ..io.atomic import open_output
from ..io.fingerprint import file_sha256

# The rank options a config may set, and what each value must be (JSON types).
CONFIG_OPTIONS: dict[str, tuple[tuple[type, ...], str]] = {
    "strategy": ((str,), "a string"),
    "half_life": ((int, float, str, type(None)), "a number of events, a time such as 30d, or null"),
    "max_history": ((int, type(None)), "a whole number or null"),
    "blend": ((str,), "a string such as text=1,cooc=0.5"),
    "ease_lambda": ((int, float), "a number"),
    "interests": ((int,), "a whole number"),
    "model": ((str,), "the path of a model folder from llmrec train"),
}


def write_config(path: str, document: dict) -> None:
    """Write the config as indented JSON, whole or not at all (floats at full precision);
    `-` writes it to stdout."""
    with open_output(path) as handle:
        json.dump(document, handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


@dataclass
class TunedConfig:
    """What `rank` takes from a config: its options and the fingerprint of its history."""

    path: str
    options: dict[str, object]
    history_fingerprint: str | None

    def history_changed(self, history_path: str) -> bool:
        """Whether `history_path`'s bytes differ from those the config was tuned on (stdin and
        missing files are left to the reader of the history to judge)."""
        if self.history_fingerprint is None or not os.path.isfile(history_path):
            return False
        return file_sha256(history_path) != self.history_fingerprint


def read_config(path: str) -> TunedConfig:
    """Read and check a config written by `llmrec tune`."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError as exc:
        raise InputError(
            f"{path}: no such file; give the JSON that 'llmrec tune -o' wrote"
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{path}: not a JSON file ({exc}); give the JSON that 'llmrec tune -o' wrote"
        ) from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    options = document.get("options") if isinstance(document, dict) else None
    if not isinstance(options, dict):
        raise InputError(
            f"{path}: no \"options\" object; give the JSON that 'llmrec tune -o' wrote"
        )
    for name, value in options.items():
        if name not in CONFIG_OPTIONS:
            raise InputError(
                f'{path}: unknown option {name!r} in "options" (known: {", ".join(CONFIG_OPTIONS)})'
            )
        kinds, what = CONFIG_OPTIONS[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise InputError(f"{path}: options.{name} must be {what}, not {value!r}")
    history = document.get("history")
    stamp = history.get("fingerprint") if isinstance(history, dict) else None
    return TunedConfig(path, options, stamp if isinstance(stamp, str) else None)
