"""The sweep ledger: one JSON record per job in ``<sweep_dir>/ledger.jsonl``.

Every job of a sweep (one first/core/final combination with one seed and the
other swept overrides) appends exactly one record when it ends, whatever the
outcome. The ledger is the single source for resuming a sweep
(:func:`is_done`) and for the summary (:mod:`src.sweep.summarize`).

Writers may run in parallel (joblib, several SLURM tasks on a shared file
system), so :func:`append_record` writes the whole line with a single
``os.write`` on an ``O_APPEND`` descriptor, under an exclusive ``flock``, and
fsyncs it. A job killed in the middle of a write can still leave a torn line
at the end of the file; the next append terminates that line with
:data:`TORN_SUFFIX` and a newline so the new record starts on its own line and
the reader can tell the torn record from real corruption.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import resource
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from src.errors import LedgerCorruptError
from src.utils.io import json_safe

log = logging.getLogger(__name__)

LEDGER_NAME = "ledger.jsonl"
# pruned: left behind by halving; interrupted: stopped by SIGINT/SIGTERM (the job's last.ckpt holds its step)
STATUSES = ("ok", "collapsed", "failed", "rejected", "diverged", "interrupted", "pruned")
COMBINATION_KEYS = ("first", "core", "final")
# Overrides that repeat one configuration rather than change it: the seed and the lentiMPRA fold pair
# (data.fold_pair, one ordered (test fold, validation fold) pair). Summaries average over them (mean ± sd).
REPLICATE_KEYS = ("seed", "data.fold_pair")
# Appended to a line left torn by a crash (it never ends a ``json.dumps`` record).
TORN_SUFFIX = "\t#torn-record"

PathLike = str | os.PathLike[str]


def _override_name(name: str) -> str:
    """Hydra override name without its ``+``/``++``/``~`` prefix."""
    return name.lstrip("+~")


def is_replicate(name: str) -> bool:
    """Whether an override name (``seed``, ``+seed``, ``data.fold_pair``...) is a replicate axis, not a setting."""
    plain = _override_name(name)
    return plain in REPLICATE_KEYS or plain.rsplit(".", 1)[-1] == "seed"


def _format_value(value: object) -> str:
    """Stable text form of an override value (JSON for lists and dicts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(json_safe(value), sort_keys=True, separators=(",", ":"))
    return str(value)


def job_key(overrides: Mapping[str, object]) -> str:
    """Stable identity of a job: its sorted ``name=value`` overrides joined by ``,``.

    >>> job_key({"seed": 1, "first": "autosome", "core": "bhi", "final": "resnet"})
    'core=bhi,final=resnet,first=autosome,seed=1'
    """
    return ",".join(f"{name}={_format_value(overrides[name])}" for name in sorted(overrides))


def make_record(
    *,
    overrides: Mapping[str, object],
    status: str,
    metrics: Mapping[str, object] | None = None,
    params: int | None = None,
    seconds: float = 0.0,
    peak_memory_mb: float | None = None,
    error: str | None = None,
    run_dir: PathLike = "",
) -> dict[str, Any]:
    """Build one ledger record; fills ``key``, ``combination`` and ``time`` and validates ``status``."""
    if status not in STATUSES:
        raise ValueError(f"unknown job status {status!r}; expected one of {', '.join(STATUSES)}")
    plain = {_override_name(k): v for k, v in overrides.items()}
    return {
        "key": job_key(overrides),
        "combination": {name: json_safe(plain.get(name)) for name in COMBINATION_KEYS},
        "overrides": json_safe(dict(overrides)),
        "status": status,
        "metrics": json_safe(dict(metrics or {})),
        "params": None if params is None else int(params),
        "seconds": float(seconds),
        "peak_memory_mb": None if peak_memory_mb is None else float(peak_memory_mb),
        "error": None if error is None else str(error),
        "run_dir": os.fspath(run_dir),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def append_record(ledger_path: PathLike, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one JSON line, atomically with respect to other writers."""
    path = Path(ledger_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(json_safe(record), allow_nan=False, ensure_ascii=False) + "\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            log.warning("%s: the last line is a torn record (interrupted write); appending after it", path)
            line = TORN_SUFFIX + "\n" + line
        data = line.encode("utf-8")
        written = os.write(fd, data)
        while written < len(data):  # only after a short write (signal, disk full): finish the same line
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def read_ledger(ledger_path: PathLike) -> list[dict[str, Any]]:
    """All records of a ledger in append order (``[]`` if the file does not exist).

    A garbled last line (a crash during the final write) and lines marked torn
    by a later append are skipped with a warning; any other garbled line raises
    :class:`LedgerCorruptError` (a ``ValueError``) naming the file and the line number.
    """
    path = Path(ledger_path)
    if not path.exists():
        return []
    with open(path, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)  # never read a line while another job is writing it
        raw = fh.read()
    lines = raw.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with a newline
    last = max((n for n, line in enumerate(lines, start=1) if line.strip()), default=0)
    records: list[dict[str, Any]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        torn = line.endswith(TORN_SUFFIX)
        text = line[: -len(TORN_SUFFIX)] if torn else line
        try:
            record = json.loads(text)
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        except ValueError as err:
            if torn or lineno == last:
                log.warning("%s:%d: skipping a truncated record (%s)", path, lineno, err)
                continue
            raise LedgerCorruptError(f"{path}:{lineno}: corrupt ledger line ({err}): {line[:80]!r}") from err
        records.append(record)
    return records


def latest_by_key(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each job key (a rerun overrides earlier attempts)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        key = record.get("key")
        if key is None:
            key = job_key(record.get("overrides") or {})
        latest[key] = dict(record)
    return latest


def is_done(ledger_path: PathLike, key: str) -> bool:
    """Whether the latest record of job ``key`` has status ``"ok"``."""
    record = latest_by_key(read_ledger(ledger_path)).get(key)
    return record is not None and record.get("status") == "ok"


def peak_memory_mb() -> float:
    """Peak resident memory of this process plus peak CUDA allocation, in MiB.

    ``ru_maxrss`` is in kB on Linux (bytes on macOS). CUDA memory is only read
    when torch has already been imported, so calling this never imports torch.
    """
    rss = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    total = rss / 2**20 if sys.platform == "darwin" else rss / 1024
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                total += torch.cuda.max_memory_allocated() / 2**20
    return total
