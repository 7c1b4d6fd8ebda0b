"""The summary of a successive-halving sweep: rungs on the leaderboard, effects of one rung, compute spent.

A ledger is a halving ledger when its records carry a ``rung`` (:mod:`src.sweep.halving_sweep`).
:mod:`src.sweep.summarize` then

* builds the leaderboard from :func:`board_records` (a ``pruned`` job counts with the score of the rung
  that pruned it) and :func:`rank_by_rung` re-ranks it: by the highest rung reached, then the metric;
  each row's status says ``ok at rung 3`` or ``pruned at rung 1``, and each heatmap cell shows its rung;
* computes the effects on :func:`rung_records` of one rung (rung 0 by default: the only rung at which
  every configuration trained) and names it in the title (:func:`rung_title`);
* appends :func:`halving_markdown`: the rungs (budget, configurations, promoted) and the compute spent,
  in optimizer steps and wall seconds, against what the full grid at the top budget would have cost.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from src.sweep.halving import HALVING_DIR, TERMINAL, record_rung
from src.sweep.ledger import latest_by_key

Row = dict[str, Any]


def is_halving(records: Iterable[Mapping[str, Any]]) -> bool:
    return any(record_rung(r) is not None for r in records)


def board_records(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records for the leaderboard: a job's latest ``pruned`` record ranks as ``ok`` with its rung's score.

    A job's ``seconds`` become the sum over its rungs (what the job cost).
    """
    seconds: dict[str, float] = defaultdict(float)
    for record in records:
        if record_rung(record) is not None and record.get("status") in TERMINAL:
            seconds[str(record.get("key"))] += _number(record.get("seconds")) or 0.0
    out = []
    for key, record in latest_by_key(records).items():
        row = {**record, "status": "ok"} if record.get("status") == "pruned" else dict(record)
        if key in seconds:
            row["seconds"] = seconds[key]
        out.append(row)
    return out


def rank_by_rung(
    rows: list[Row],
    records: Sequence[Mapping[str, Any]],
    metric: str,
    higher: bool,
    config_of: Callable[[Mapping[str, Any]], str],
) -> list[Row]:
    """Rows ranked by the highest rung reached, then ``<metric>_mean``; statuses say the rung (and pruned)."""
    jobs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in latest_by_key(records).values():
        jobs[config_of(record)].append(record)
    for row in rows:
        runs = jobs.get(row["config"], [])
        rungs = [r for r in (record_rung(x) for x in runs) if r is not None]
        row["rung"] = max(rungs) if rungs else None
        pruned = sum(x.get("status") == "pruned" for x in runs)
        ok = sum(x.get("status") == "ok" for x in runs)
        if row["rung"] is not None and row["n_seeds"]:
            parts = ([f"{ok} ok"] if ok else []) + ([f"{pruned} pruned"] if pruned else [])
            others = [x.get("status") for x in runs if x.get("status") not in ("ok", "pruned")]
            parts += [f"{others.count(s)} {s}" for s in sorted(set(others))]
            row["status"] = f"{', '.join(parts)} at rung {row['rung']}"  # e.g. "2 pruned at rung 1"
            row["partial"] = bool(others)
    sign = -1.0 if higher else 1.0

    def order(row: Row) -> tuple[int, int, float, str]:
        value = row.get(f"{metric}_mean")
        if not row["n_seeds"]:
            return 2, 0, 0.0, row["config"]
        if value is None:
            return 1, 0, 0.0, row["config"]
        return 0, -(row.get("rung") or 0), sign * value, row["config"]

    rows.sort(key=order)
    for rank, row in enumerate((r for r in rows if r["n_seeds"]), start=1):
        row["rank"] = rank
    return rows


def rung_records(records: Sequence[Mapping[str, Any]], rung: int = 0) -> list[dict[str, Any]]:
    """Each job's outcome record at ``rung`` (for the effects: one rung at a time)."""
    at_rung = [r for r in records if record_rung(r) == rung and r.get("status") in TERMINAL]
    return list(latest_by_key(at_rung).values())


def read_plan(sweep_dir: Path) -> dict[str, Any]:
    try:
        plan = json.loads((sweep_dir / HALVING_DIR / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return plan if isinstance(plan, dict) else {}


def rung_title(title: str, records: Sequence[Mapping[str, Any]], rung: int = 0) -> str:
    """``title`` naming the rung the effects use, its budget and how many jobs trained at it."""
    chosen = rung_records(records, rung)
    budgets = {r.get("budget_epochs") for r in chosen if r.get("budget_epochs") is not None}
    epochs = budgets.pop() if len(budgets) == 1 else None
    budget = "" if epochs is None else f"{epochs} epoch{'s' if epochs != 1 else ''}, "
    return f"{title} (successive halving: effects of rung {rung}, {budget}{len(chosen)} jobs)"


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def compute_spent(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Steps and wall seconds the halving sweep spent, against the full grid at the top budget.

    A job's steps are its last trained rung's ``steps`` (rungs continue one run); its seconds add up
    over its rungs. The full grid trains every job for ``full_steps``; its wall time is estimated from
    each job's own seconds per step.
    """
    trained: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        if record_rung(record) is not None and record.get("status") in TERMINAL:
            trained[str(record.get("key"))].append(record)
    steps = full_steps = seconds = full_seconds = 0.0
    for runs in trained.values():
        job_steps = max((_number(r.get("steps")) or 0.0 for r in runs), default=0.0)
        job_full = max((_number(r.get("full_steps")) or 0.0 for r in runs), default=0.0)
        job_seconds = sum(_number(r.get("seconds")) or 0.0 for r in runs)
        steps += job_steps
        full_steps += job_full
        seconds += job_seconds
        if job_steps:
            full_seconds += job_seconds / job_steps * job_full
    return {
        "jobs": float(len(trained)),
        "steps": steps,
        "full_steps": full_steps,
        "seconds": seconds,
        "full_seconds": full_seconds,
    }


def _ratio(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "-"


def halving_markdown(sweep_dir: Path, records: Sequence[Mapping[str, Any]]) -> str:
    """The rungs and the compute spent, as a Markdown section."""
    plan = read_plan(sweep_dir)
    lines = ["", "## Successive halving", ""]
    if plan:
        lines.append(
            f"eta {plan.get('eta')}, {plan.get('rungs')} rungs of {plan.get('budgets_epochs')} epochs; promoted by "
            f"`{plan.get('metric')}` ({plan.get('mode')}, validation, mean over seeds; ties by configuration key). "
            "Rows are ranked by the highest rung reached, then the metric."
        )
        lines.append("")
    body = []
    rungs = sorted({r for r in (record_rung(x) for x in records) if r is not None})
    for rung in rungs:
        chosen = rung_records(records, rung)
        decision_path = sweep_dir / HALVING_DIR / f"rung-{rung}.json"
        promoted = "-"
        if decision_path.is_file():
            try:
                decision = json.loads(decision_path.read_text(encoding="utf-8"))
                promoted = f"{len(decision.get('promoted') or [])} of {len(decision.get('scores') or {})}"
            except ValueError:
                promoted = "?"
        budgets = sorted({str(r.get("budget_epochs")) for r in chosen})
        body.append(f"| {rung} | {', '.join(budgets)} | {len(chosen)} | {promoted} |")
    lines += ["| rung | epochs | jobs trained | configurations promoted |", "|---|---|---|---|", *body, ""]
    spent = compute_spent(records)
    lines.append(
        f"Compute spent: {spent['steps']:,.0f} optimizer steps of the {spent['full_steps']:,.0f} the full grid "
        f"({spent['jobs']:.0f} jobs at the top budget) would take ({_ratio(spent['steps'], spent['full_steps'])}); "
        f"wall {spent['seconds']:,.1f} s of an estimated {spent['full_seconds']:,.1f} s "
        f"({_ratio(spent['seconds'], spent['full_seconds'])})."
    )
    return "\n".join(lines) + "\n"
