"""Fingerprints of input files: what says that a history or a model is still the one a later
step was made from."""

from __future__ import annotations

import hashlib

CHUNK = 1 << 20


def file_sha256(path: str) -> str | None:
    """The sha256 of a file's bytes, read a megabyte at a time (None for stdin, `-`)."""
    if path == "-":
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
