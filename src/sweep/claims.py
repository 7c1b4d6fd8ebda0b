"""Job claims: two launches of the same sweep run every job once.

Before a job trains it creates ``<sweep_dir>/claims/<hash of its key>.claim`` with ``O_CREAT | O_EXCL``
(atomic on local and NFSv3+ file systems); a launch that finds the claim taken skips the job. The
owner touches its claim every :data:`HEARTBEAT_S` seconds while the job runs and removes it once the
ledger holds the job's record. A claim is stale, and may be taken over, when its owner's process is
gone (same host) or it has not been touched for ``timeout`` seconds (``sweep.claim_timeout``; a
SIGKILLed owner on another host). Taking over renames the stale claim away first, so of two launches
that find the same stale claim only one wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

CLAIMS_DIR = "claims"
HEARTBEAT_S = 30.0


def claim_path(sweep_dir: Path, key: str) -> Path:
    return sweep_dir / CLAIMS_DIR / f"{hashlib.sha1(key.encode('utf-8')).hexdigest()[:20]}.claim"


def _owner_alive(info: dict) -> bool:
    if info.get("host") != socket.gethostname():
        return True  # cannot tell from here: only the timeout decides
    try:
        os.kill(int(info.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _is_stale(path: Path, timeout: float) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return False  # released meanwhile: the next attempt creates it
    except (OSError, ValueError):
        info = {}
        age = timeout + 1 if not path.exists() else age
    return age > timeout or not _owner_alive(info)


class Claim:
    """A held claim on one job; :meth:`release` removes it (also usable as a context manager)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="sweep-claim-heartbeat", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:  # pragma: no cover - the claim was taken over or the folder is gone
                return

    def release(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.path.unlink()


def try_claim(sweep_dir: Path, key: str, timeout: float) -> Claim | None:
    """Claim the job ``key``; ``None`` when another live launch holds it."""
    path = claim_path(sweep_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = json.dumps({"key": key, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not _is_stale(path, timeout):
                return None
            stale = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(path, stale)  # only one of several launches finds it still there
            except FileNotFoundError:
                continue
            log.warning("took over the stale claim of %s (%s)", key, stale.read_text(encoding="utf-8")[:200])
            stale.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(info)
        return Claim(path)
    return None


def claim_held(sweep_dir: Path, key: str, timeout: float) -> bool:
    """Whether a live launch holds the claim of job ``key`` (a stale claim counts as free)."""
    path = claim_path(sweep_dir, key)
    return path.exists() and not _is_stale(path, timeout)
