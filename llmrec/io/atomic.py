"""Outputs that appear whole or not at all.

Every file (or folder of shards) is written under a temp name in the destination folder and
renamed over the target only once complete, so a killed run never leaves a half-written output;
temp names carry the writer's pid, so the next run can remove those of dead runs.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError

STDIO = "-"  # the path that means standard input or output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temps(target: Path) -> None:
    """Delete temp files that killed runs left beside `target` (their process is gone).

    Temp names carry the writer's pid, so a run still writing (here, concurrently) is left alone.
    """
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = leftover.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            if leftover.is_dir():  # a staged folder of shards (staged_folder)
                shutil.rmtree(leftover, ignore_errors=True)
                continue
            with contextlib.suppress(OSError):
                leftover.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temp_prefix(target: Path, given: str) -> str:
    """The name prefix of this process's temp outputs beside `target`, once its folder is known
    to exist and the leftovers of dead runs are gone."""
    if not target.parent.is_dir():
        raise InputError(f"{given}: output folder {str(target.parent)!r} does not exist")
    remove_stale_temps(target)
    return f".{target.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds.

    A killed or failed run therefore never leaves a half-written file under the output name.
    Devices and named pipes (`/dev/null`, a FIFO) are written in place; a symlink's target is
    replaced, not the link.
    """
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the output")
    if target.exists() and not target.is_file():  # a device, pipe or socket: nothing to replace
        yield str(target)
        return
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target, path), suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def open_output(path: str) -> Iterator[io.TextIOBase]:
    """Open a text output: stdout for `-`, else an atomically replaced file."""
    if path == STDIO:
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        yield handle


@contextlib.contextmanager
def staged_folder(output: str) -> Iterator[str]:
    """Yield an empty temp folder beside `output`; on success it replaces `output` (a file or a
    folder), on failure it is removed. Temp folders of killed runs are removed first."""
    target = Path(os.path.realpath(output))
    prefix = _temp_prefix(target, output)
    staging = tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        old = None
        if target.exists():  # a folder can't be renamed over: move the previous one aside
            old = tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent)
            os.replace(target, Path(old) / "previous")
        os.replace(staging, target)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
