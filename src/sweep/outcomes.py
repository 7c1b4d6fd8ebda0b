"""Outcomes of one launch of a sweep (one ``train.py -m`` command): what became of each job, and the exit status.

:func:`start_launch` (at ``on_multirun_start``) names the launch in the environment, which the job
processes inherit (basic launcher, joblib workers, SLURM tasks exported with the environment); each
job appends its outcome to ``<sweep_dir>/launches/<launch id>.jsonl`` (:func:`note_outcome`);
:func:`launch_summary` turns those lines into the one-line summary, e.g.
``8 jobs: 6 ok, 1 failed, 1 rejected; incomplete: 2 of 8 did not train (the error of each is in
<sweep_dir>/ledger.jsonl)``, and the exit status (1 when a job failed or diverged, or when
every job was rejected: a sweep that trained nothing did not succeed).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path

from src.sweep.ledger import LEDGER_NAME, append_record

LAUNCH_ENV = "PRIXFIXE_SWEEP_LAUNCH"
LAUNCH_STARTED_ENV = "PRIXFIXE_SWEEP_STARTED"
LAUNCHES_DIR = "launches"
# order of the summary; "skipped": already ok in the ledger, "elsewhere": run by another launch of the sweep
OUTCOMES = ("ok", "collapsed", "failed", "rejected", "diverged", "pruned", "skipped", "elsewhere")
FAILING = ("failed", "diverged")
UNTRAINED = ("rejected", *FAILING)  # jobs that ended without a trained model


def start_launch() -> str:
    """Name this launch (kept in the environment for the job processes); returns its id."""
    launch = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    os.environ[LAUNCH_ENV] = launch
    os.environ[LAUNCH_STARTED_ENV] = repr(time.time())
    return launch


def launch_started() -> float | None:
    """When this launch started (seconds since the epoch), or ``None`` outside a named launch."""
    try:
        return float(os.environ[LAUNCH_STARTED_ENV])
    except (KeyError, ValueError):
        return None


def note_outcome(sweep_dir: Path, key: str, outcome: str) -> None:
    """Record what became of job ``key`` in this launch (nothing outside a named launch)."""
    launch = os.environ.get(LAUNCH_ENV)
    if launch:
        append_record(sweep_dir / LAUNCHES_DIR / f"{launch}.jsonl", {"key": key, "outcome": outcome})


def launch_summary(sweep_dir: Path, launch: str) -> tuple[str, int]:
    """``("8 jobs: 6 ok, 1 failed, 1 rejected", exit status)`` of a launch, from its outcome lines."""
    path = sweep_dir / LAUNCHES_DIR / f"{launch}.jsonl"
    latest: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            latest[str(item.get("key"))] = str(item.get("outcome"))
    counts = Counter(latest.values())
    labels = {"skipped": "skipped (already ok)", "elsewhere": "run by another launch"}
    parts = [f"{counts[o]} {labels.get(o, o)}" for o in OUTCOMES if counts[o]]
    n = len(latest)
    line = f"{n} job{'s' if n != 1 else ''}: " + (", ".join(parts) if parts else "none ran")
    untrained = sum(counts[o] for o in UNTRAINED)
    if untrained:  # a mix of ok and rejected jobs is not a finished sweep, although the status is 0
        line += f"; incomplete: {untrained} of {n} did not train (the error of each is in {sweep_dir / LEDGER_NAME})"
    nothing_trained = n > 0 and counts["rejected"] == n
    return line, 1 if any(counts[o] for o in FAILING) or nothing_trained else 0
