"""One run per folder: a lock file in the run folder while a training run uses it.

:func:`take_run_lock` creates ``<run folder>/run.lock`` with ``O_CREAT | O_EXCL`` (atomic, also on
NFSv3+), holding the owner's PID, host and start time as JSON. A second process that finds the lock
held refuses with one line naming the folder and the running process (:class:`ConfigError`, exit 2)
before it writes anything. The lock is released (removed) when the run ends, whatever the outcome
(:func:`releasing_run_locks` around the task); a lock whose owner process is dead on this host (a
SIGKILLed run), or that this process left behind, is taken over with a warning. A lock held by a
process on another host cannot be checked from here and is never taken over: remove the file once
that run is known to be gone.

Under DDP every rank runs the training task; only the first rank (global rank 0) takes the lock, the
other ranks join the run it locked (:func:`secondary_rank`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from src.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"

_held: dict[Path, bool] = {}  # locks this process holds (insertion order) -> whether it made the run folder


def _owner(path: Path) -> dict[str, Any] | None:
    """The lock's owner record; ``None`` when the file vanished; ``{}`` when it is unreadable (being written)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _owner_dead(info: dict[str, Any], path: Path) -> bool:
    """Whether the owner is known to be gone: its PID is dead on this host, or it is this process and not held."""
    if info.get("host") != socket.gethostname():
        return False  # another host (or an unreadable record): cannot tell from here
    try:
        pid = int(info.get("pid", -1))
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        return path not in _held  # left behind by an earlier run of this process (an exception that escaped)
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def _describe(info: dict[str, Any]) -> str:
    pid, host = info.get("pid", "?"), info.get("host", "?")
    started = info.get("started")
    since = f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}" if started else ""
    return f"process {pid} on {host}{since}"


# the variables by which Lightning (and SLURM, jsrun) tell a process its rank in a multi-process run
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def secondary_rank() -> bool:
    """Whether this process is a DDP rank other than the first (it joins the run the first rank locked)."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return True
    return False


def take_run_lock(run_dir: Path, key: str = "hydra.run.dir") -> Path:
    """Lock ``run_dir`` for this process (released by :func:`releasing_run_locks`); refuse if another run holds it.

    A secondary DDP rank takes no lock: the first rank of the same run holds it.
    """
    path = (run_dir / LOCK_NAME).absolute()
    if secondary_rank():
        return path
    made_folder = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
    for _ in range(5):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            info = _owner(path)
            if info is None:
                continue  # released meanwhile: try again
            if not info:
                time.sleep(0.05)  # created but not yet written by its owner
                info = _owner(path) or {}
            if not _owner_dead(info, path):
                where = _describe(info) if info else f"an unknown process ({path} is unreadable)"
                raise ConfigError(
                    f"{key}: {run_dir} is in use by another run ({where}); wait for it to end or choose another "
                    f"folder (remove {path} only if that process is gone)"
                ) from None
            # rename the stale lock away first: of two processes that find it, only one takes it over
            stale = path.with_name(f"{LOCK_NAME}.stale-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(path, stale)
            except FileNotFoundError:
                continue
            stale.unlink(missing_ok=True)
            log.warning("took over the lock of %s from %s, which is no longer running", run_dir, _describe(info))
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(record)
        _held[path] = made_folder
        return path
    raise ConfigError(f"{key}: could not lock {run_dir} ({path} keeps changing; another run is starting there?)")


def release_run_lock(path: Path) -> None:
    """Remove a lock this process holds (never one another process took over meanwhile)."""
    made_folder = _held.pop(path, False)
    info = _owner(path)
    if info and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if made_folder:
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only when the run wrote nothing there


@contextlib.contextmanager
def releasing_run_locks() -> Iterator[None]:
    """Release every run lock taken inside the block when it ends (returns, raises or is interrupted)."""
    before = set(_held)
    try:
        yield
    finally:
        for path in reversed([p for p in _held if p not in before]):
            release_run_lock(path)
