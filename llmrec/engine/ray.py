"""The Ray session: connect to a cluster or start a private local one, and turn Ray's errors
into llmrec's. Ray is optional (`pip install 'llmrec[ray]'`) and imported only through here.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import LlmrecError, first_line
from ..options import flag

INSTALL_HINT = f"{flag('engine')} ray needs Ray: pip install 'llmrec[ray]'"


@dataclass
class RayOptions:
    """Where and how wide to run: a cluster address (None starts a local Ray on this machine,
    bound to 127.0.0.1), the number of encoding actors, and GPUs per actor."""

    address: str | None = None
    concurrency: int | None = None
    gpus_per_worker: float = 0.0


def require_ray():
    """Import Ray, or fail in one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise LlmrecError(INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[object]:
    """Connect to the cluster at `options.address` (or start a local one) for the block; a
    session started here is shut down after it, one already running is left alone."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        _start(ray, options.address)
    context = ray.data.DataContext.get_current()
    before = context.enable_progress_bars, context.execution_options.preserve_order
    try:
        context.enable_progress_bars = False
        # llmrec's datasets come back in input order: shards are named, and rows checked, by it
        context.execution_options.preserve_order = True
        with _ray_data_console_off():
            yield ray
    finally:
        context.enable_progress_bars, context.execution_options.preserve_order = before
        if started:
            ray.shutdown()


@contextlib.contextmanager
def _ray_data_console_off() -> Iterator[None]:
    """Silence Ray Data's console log for the block: a failed run reaches the user as llmrec's
    one line (`ray_call`), not as Ray Data's tracebacks. Its log file in the Ray session's
    folder keeps everything."""
    consoles = [
        handler
        for handler in logging.getLogger("ray.data").handlers
        if isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
    ]
    levels = [handler.level for handler in consoles]
    for handler in consoles:
        handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for handler, level in zip(consoles, levels, strict=True):
            handler.setLevel(level)


def _start(ray, address: str | None) -> None:
    settings = {
        # workers load MKL before llmrec can set this for them (see llmrec/__init__.py)
        "runtime_env": {"env_vars": {"MKL_CBWR": os.environ["MKL_CBWR"]}},
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    try:
        if address:
            ray.init(address=address, **settings)
        else:  # a private local cluster; no traffic leaves the machine
            ray.init(_node_ip_address="127.0.0.1", **settings)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray"
        raise LlmrecError(
            f"{flag('address')}: cannot start or reach {where}: {first_line(exc)}"
        ) from exc


def ray_call(call):
    """Run a Ray call, turning an llmrec error raised on a worker back into itself."""
    ray = require_ray()
    try:
        return call()
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None)
        while cause is not None and not isinstance(cause, LlmrecError):
            cause = getattr(cause, "cause", None) or cause.__cause__
        if isinstance(cause, LlmrecError):
            raise cause from None
        raise LlmrecError(f"Ray failed: {first_line(exc)}") from exc
