"""The rung loop of a successive-halving sweep, run by the sweeper (``hydra/sweeper=halving``).

Why a sweeper: Hydra's launchers run the jobs of a batch to their end (the basic launcher one after
the other), so a job cannot wait for the other jobs of its rung. The sweeper instead launches one
batch per rung: every job of rung 0 with ``sweep.halving.rung=0``, then the promoted ones with
``sweep.halving.rung=1``, and so on, through whatever launcher is configured (basic, joblib,
submitit/SLURM). Each job keeps its ledger key and its folder over the rungs (``sweep.halving.*`` is not
part of a job's identity), so a promoted job continues from its own ``last.ckpt``.

Bookkeeping, all in the sweep folder:

* ``halving/plan.json``: eta, rungs and the budgets; a later launch with another eta or rungs is refused;
* every job record carries ``rung``, ``budget_epochs``, ``steps`` (optimizer steps done so far) and
  ``full_steps`` (those of the full budget);
* ``halving/rung-<r>.json``: the decision of rung ``r`` (every configuration's score, the promoted
  ones), written once (an atomic ``link``, under the ``flock`` of ``halving/rung-<r>.lock``) by
  whichever launch sees the rung complete first; that launch also appends a ``pruned`` record (with
  the rung and the score) for each job left behind.

Two launches of the same command share a rung with the job claims of :mod:`src.sweep.claims`: each
launches the rung's jobs that no live launch holds (the others' jobs come back ``elsewhere``), then
waits, looking at the ledger every ``sweep.halving.poll_s`` seconds, until every job of the rung has
its record. A rerun of the command skips finished rungs (their decisions are read, never remade) and
finishes the current one; a job killed mid-rung continues from its ``last.ckpt``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from src.errors import ConfigError
from src.sweep.claims import claim_held
from src.sweep.halving import (
    HALVING_DIR,
    TERMINAL,
    HalvingPlan,
    config_scores,
    finished_rung,
    promote,
    record_rung,
)
from src.sweep.ledger import LEDGER_NAME, append_record, job_key, latest_by_key, make_record, read_ledger
from src.sweep.outcomes import note_outcome

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
RUNG_OVERRIDE = "sweep.halving.rung"
MAX_LAUNCHES = 2  # launches of one job within one rung of this launch before the sweep gives up on it

Launch = Callable[[list[list[str]]], None]


class HalvingStalled(RuntimeError):
    """A rung cannot finish: a job ended twice without a record (it raised past the ledger)."""


def is_replicate(name: str) -> bool:
    """Whether an override repeats a configuration (its seed) rather than change it."""
    plain = name.lstrip("+~")
    return plain == "seed" or plain.endswith(".seed")


def config_key(overrides: Mapping[str, object]) -> str:
    """A configuration: a job key without its seed."""
    return job_key({k.lstrip("+~"): v for k, v in overrides.items() if not is_replicate(k)})


def record_config(record: Mapping[str, Any]) -> str:
    return config_key(record.get("overrides") or {})


def plan_dict(plan: HalvingPlan) -> dict[str, Any]:
    return {
        "eta": plan.eta,
        "rungs": plan.rungs,
        "epochs": plan.epochs,
        "budgets_epochs": plan.budgets(),
        "metric": plan.metric,
        "mode": plan.mode,
    }


def _write_once(path: Path, payload: Mapping[str, Any]) -> bool:
    """Write ``path`` unless it exists (atomically, whole or not at all); whether this call wrote it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    try:
        os.link(tmp, path)  # fails when another launch wrote it first
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def check_plan(sweep_dir: Path, plan: HalvingPlan) -> None:
    """Record the plan of a new halving sweep; refuse a resumed one with another eta or rungs (ConfigError)."""
    path = sweep_dir / HALVING_DIR / PLAN_FILE
    if _write_once(path, plan_dict(plan)):
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: unreadable halving plan ({err})") from err
    for key in ("eta", "rungs"):
        if recorded.get(key) != getattr(plan, key):
            raise ConfigError(
                f"sweep.halving.{key}={getattr(plan, key)} differs from {key}={recorded.get(key)} of the halving "
                f"sweep in {path}; resume it with sweep.halving.{key}={recorded.get(key)} or use another sweep.name"
            )


def rung_records(records: Sequence[Mapping[str, Any]], rung: int) -> dict[str, dict[str, Any]]:
    """Each job's last record of its outcome at ``rung`` (``pruned`` records are decisions, not outcomes)."""
    return latest_by_key(r for r in records if record_rung(r) == rung and r.get("status") in TERMINAL)


@contextlib.contextmanager
def _rung_lock(sweep_dir: Path, rung: int) -> Iterator[None]:
    """An exclusive lock on the decision of ``rung`` (released by the kernel if its holder dies)."""
    path = sweep_dir / HALVING_DIR / f"rung-{rung}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def decide(sweep_dir: Path, plan: HalvingPlan, rung: int, keys: Sequence[str]) -> dict[str, Any]:
    """The decision of a complete rung over the jobs ``keys``: read when made already, else made and recorded.

    Under the rung's lock, so of two launches one decides and records the pruned jobs, and the other
    finds both done (or finishes the records of a launch killed in between).
    """
    with _rung_lock(sweep_dir, rung):
        return _decide_locked(sweep_dir, plan, rung, keys)


def _decide_locked(sweep_dir: Path, plan: HalvingPlan, rung: int, keys: Sequence[str]) -> dict[str, Any]:
    path = sweep_dir / HALVING_DIR / f"rung-{rung}.json"
    records = read_ledger(sweep_dir / LEDGER_NAME)
    outcomes = rung_records(records, rung)
    members = [outcomes[k] for k in keys if k in outcomes]
    if path.is_file():
        decision = json.loads(path.read_text(encoding="utf-8"))
    else:
        scores = config_scores(members, record_config, plan.metric)
        decision = {
            **plan_dict(plan),
            "rung": rung,
            "budget_epochs": plan.budget(rung),
            "next_budget_epochs": plan.budget(rung + 1),
            "scores": dict(sorted(scores.items())),
            "promoted": promote(scores, plan.eta, higher=plan.mode == "max"),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if not _write_once(path, decision):  # another launch decided first: its decision holds
            decision = json.loads(path.read_text(encoding="utf-8"))
        else:
            log.info(
                "rung %d (%d epochs): %d of %d configurations go on to %d epochs",
                rung,
                plan.budget(rung),
                len(decision["promoted"]),
                len(scores),
                plan.budget(rung + 1),
            )
    _record_pruned(sweep_dir, plan, decision, members, latest_by_key(records))
    return decision


def _record_pruned(
    sweep_dir: Path,
    plan: HalvingPlan,
    decision: Mapping[str, Any],
    members: Sequence[Mapping[str, Any]],
    latest: Mapping[str, Mapping[str, Any]],
) -> None:
    """Append a ``pruned`` record (rung, score) for each job the decision leaves behind that has none yet."""
    rung, kept, scores = int(decision["rung"]), set(decision["promoted"]), decision.get("scores") or {}
    for record in members:
        config = record_config(record)
        current = latest.get(str(record.get("key"))) or {}
        if config in kept or (current.get("status") == "pruned" and record_rung(current) == rung):
            continue
        pruned = make_record(
            overrides=record.get("overrides") or {},
            status="pruned",
            metrics=record.get("metrics"),
            params=record.get("params"),
            run_dir=record.get("run_dir") or "",
        )
        pruned.update(
            rung=rung,
            budget_epochs=plan.budget(rung),
            score=scores.get(config),
            steps=record.get("steps"),
            full_steps=record.get("full_steps"),
        )
        append_record(sweep_dir / LEDGER_NAME, pruned)
        note_outcome(sweep_dir, pruned["key"], "pruned")


def complete_rung(
    sweep_dir: Path,
    rung: int,
    jobs: Sequence[list[str]],
    keys: Sequence[str],
    launch: Launch,
    poll_s: float,
    claim_timeout: float,
) -> None:
    """Launch the jobs of ``rung`` that have no record at it and no live claim; wait for the others' records."""
    launched: Counter[int] = Counter()
    while True:
        latest = latest_by_key(read_ledger(sweep_dir / LEDGER_NAME))
        pending = [i for i in range(len(jobs)) if not finished_rung(latest.get(keys[i]), rung)]
        if not pending:
            return
        free = [i for i in pending if not claim_held(sweep_dir, keys[i], claim_timeout)]
        if not free:
            time.sleep(poll_s)  # another launch trains them
            continue
        stalled = [keys[i] for i in free if launched[i] >= MAX_LAUNCHES]
        if stalled:
            raise HalvingStalled(
                f"rung {rung}: {len(stalled)} job(s) ended {MAX_LAUNCHES} times without a ledger record, "
                f"e.g. {stalled[0]}; see their error.log and run the command again"
            )
        launched.update(free)
        launch([[*jobs[i], f"{RUNG_OVERRIDE}={rung}"] for i in free])


def run_halving(
    sweep_dir: Path,
    plan: HalvingPlan,
    jobs: Sequence[list[str]],
    identities: Sequence[Mapping[str, object]],
    launch: Launch,
    poll_s: float = 10.0,
    claim_timeout: float = 600.0,
) -> list[dict[str, Any]]:
    """Run every rung over ``jobs`` (override lists; ``identities``: their identity overrides); the decisions."""
    check_plan(sweep_dir, plan)
    keys = [job_key(identity) for identity in identities]
    configs = [config_key(identity) for identity in identities]
    members = list(range(len(jobs)))
    decisions = []
    for rung in range(plan.rungs):
        complete_rung(
            sweep_dir, rung, [jobs[i] for i in members], [keys[i] for i in members], launch, poll_s, claim_timeout
        )
        if rung == plan.rungs - 1:
            break
        decision = decide(sweep_dir, plan, rung, [keys[i] for i in members])
        decisions.append(decision)
        promoted = set(decision["promoted"])
        members = [i for i in members if configs[i] in promoted]
    return decisions
