"""Chunks of an embed run: row ranges encoded and written together, and the store that keeps
finished chunks beside the output so that a killed run resumes after its last finished one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .texts import ItemTexts

# Input rows encoded and written (as one Parquet row group) at a time: memory follows this, and
# a killed run loses at most one chunk of work (about 10 s of a CPU, less on a GPU).
CHUNK_ROWS = 4096


@dataclass
class Chunk:
    """Vectors for input rows [start, stop), and how many distinct texts each source gave."""

    index: int
    start: int
    stop: int
    vectors: np.ndarray
    encoded: int = 0
    reused: int = 0
    resumed: bool = False
    truncated: int = 0


def chunk_bounds(n_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Input-row ranges of the chunks that are encoded and written one at a time."""
    return [(start, min(start + chunk_rows, n_rows)) for start in range(0, n_rows, chunk_rows)]


class ChunkStore:
    """Finished chunks of an embed run, kept beside the output until the run succeeds.

    A run that is killed leaves `.{output}.chunks/` behind; the next run with the same input
    texts, model and settings (the folder's `key`) picks up every finished chunk instead of
    encoding it again. A folder with another key is emptied. A run that cannot lock the folder
    (another run is using it) keeps no chunks.
    """

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key
        self._lock = None

    @classmethod
    def beside(cls, output: str, key: str) -> ChunkStore | None:
        """The store for `output`, locked for this run; None where no store can be kept."""
        target = Path(os.path.realpath(output))
        if target.exists() and not target.is_file():
            return None  # a device or pipe: nothing to resume into
        store = cls(target.parent / f".{target.name}.chunks", key)
        return store if store._open() else None

    def _open(self) -> bool:
        try:
            self.folder.mkdir(exist_ok=True)
            self._lock = open(self.folder / "lock", "w")  # noqa: SIM115 (held for the run)
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            return False
        key_file = self.folder / "key"
        if not key_file.is_file() or key_file.read_text() != self.key:
            for stale in self.folder.glob("chunk-*"):
                stale.unlink(missing_ok=True)
            key_file.write_text(self.key)
        return True

    def finished(self, index: int) -> np.ndarray | None:
        """The vectors of chunk `index` if a previous run finished it."""
        try:
            return np.load(self.folder / f"chunk-{index:06d}.npy")
        except (OSError, ValueError):
            return None

    def save(self, index: int, vectors: np.ndarray) -> None:
        """Keep a chunk's vectors (written to a temp name, then renamed: never half a chunk)."""
        tmp = self.folder / f".chunk-{index:06d}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, vectors)
        os.replace(tmp, self.folder / f"chunk-{index:06d}.npy")

    def has_chunks(self) -> bool:
        return any(self.folder.glob("chunk-*.npy"))

    def close(self, remove: bool = False) -> None:
        """Release the lock; with `remove`, delete the folder (the output is complete)."""
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def run_key(items: ItemTexts, meta: dict[str, str], chunk_rows: int) -> str:
    """What a finished chunk depends on: the texts in row order, the model and its settings."""
    digest = hashlib.sha256()
    for key in REUSE_KEYS:
        digest.update(f"{key}={meta.get(key)}\n".encode())
    digest.update(f"chunk_rows={chunk_rows}\n".encode())
    digest.update("".join(items.hashes[items.codes]).encode())
    return digest.hexdigest()


# Metadata keys that must match for a stored vector to stand in for encoding its text again.
REUSE_KEYS = ("model_fingerprint", "pooling", "max_length", "dtype", "normalized")
