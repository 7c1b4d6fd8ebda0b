"""``recipe.retries=N``: a run that ends collapsed or diverged starts again, from the same seeded initial weights,
at a third of the peak learning rate, up to N times.

Each attempt is a whole training run in the same run folder; before the next one starts, the failed attempt's
files move to ``<run>/attempt-<n>/`` (kept, not overwritten). The final ``metrics.json`` says which attempt
produced it (``attempt``), lists every attempt (``attempts``: number, peak, status, metrics) and gives the
first peak in ``lr.first_peak``. In a sweep each attempt becomes its own ledger record (:func:`ledger_records`),
the final one last. With ``recipe.lr=auto`` the range test runs once: later attempts use a third of the previous
attempt's peak. ``recipe.retries=0`` (the default) trains exactly once.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from src.errors import DivergedError
from src.lr_range import CURVE_PNG
from src.utils.io import json_safe, write_json

log = logging.getLogger(__name__)

RETRY_FACTOR = 1.0 / 3.0
FAILED = ("collapsed", "diverged")
ATTEMPT_PREFIX = "attempt-"


def retries_of(cfg: DictConfig) -> int:
    return int(OmegaConf.select(cfg, "recipe.retries", default=0) or 0)


def _read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        summary = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def _set_aside(run_dir: Path, attempt: int) -> Path:
    """Move the attempt's files (not hidden files, locks or earlier attempts) into ``attempt-<n>/``.

    The range test's curve is copied, not moved: it found the run's peak, which every attempt derives from.
    """
    folder = run_dir / f"{ATTEMPT_PREFIX}{attempt}"
    folder.mkdir()
    for item in sorted(run_dir.iterdir()):
        if item.name.startswith((".", ATTEMPT_PREFIX)) or item.name.endswith(".lock"):  # a run lock stays
            continue
        if item.name == CURVE_PNG:
            shutil.copy2(item, folder / item.name)
            continue
        shutil.move(str(item), str(folder / item.name))
    return folder


def _attempt_entry(attempt: int, summary: Mapping[str, Any], folder: Path | None) -> dict[str, Any]:
    lr = summary.get("lr") or {}
    return {
        "attempt": attempt,
        "lr": lr.get("peak"),
        "status": summary.get("status"),
        "metrics": summary.get("metrics") or {},
        "params": summary.get("params"),
        "seconds": summary.get("seconds"),
        "folder": None if folder is None else str(folder),
    }


def train_with_retries(train_once: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """``train_once(cfg)`` with ``recipe.retries`` (see the module doc); returns the final attempt's summary."""
    retries = retries_of(cfg)
    run_dir = Path(str(cfg.paths.run_dir))
    attempts: list[dict[str, Any]] = []
    attempt_cfg = copy.deepcopy(cfg)
    first_peak: float | None = None
    for attempt in range(1, retries + 2):
        with open_dict(attempt_cfg):
            attempt_cfg.recipe.retries = 0  # the inner run trains once
        error: DivergedError | None = None
        try:
            summary = train_once(attempt_cfg)
        except DivergedError as err:
            error = err
            summary = _read_summary(run_dir)
            if not summary:
                raise
        peak = (summary.get("lr") or {}).get("peak")
        first_peak = peak if first_peak is None else first_peak
        last = summary.get("status") not in FAILED or attempt > retries or peak is None
        folder = None if last else _set_aside(run_dir, attempt)
        attempts.append(_attempt_entry(attempt, summary, folder))
        if last:
            break
        retry_peak = float(peak) * RETRY_FACTOR
        log.warning(
            "attempt %d of %d ended %s at peak lr %.4g: starting again from the seeded initial weights at %.4g",
            attempt,
            retries + 1,
            summary.get("status"),
            peak,
            retry_peak,
        )
        attempt_cfg = copy.deepcopy(cfg)
        with open_dict(attempt_cfg):
            attempt_cfg.recipe.lr = retry_peak
    summary = dict(summary)
    summary["attempt"] = attempts[-1]["attempt"]
    summary["attempts"] = attempts
    lr = dict(summary.get("lr") or {})
    if len(attempts) > 1:
        first = _attempt_summary_lr(run_dir, 1)
        lr.update({"source": "retry", "first_peak": first_peak, "first_source": first.get("source")})
        if first.get("search"):
            lr["search"] = first["search"]
    summary["lr"] = lr
    summary = json_safe(summary)
    write_json(run_dir / "metrics.json", summary)
    if error is not None:
        raise DivergedError(f"{error} (attempt {len(attempts)} of {retries + 1})") from error
    return summary


def _attempt_summary_lr(run_dir: Path, attempt: int) -> dict[str, Any]:
    return dict(_read_summary(run_dir / f"{ATTEMPT_PREFIX}{attempt}").get("lr") or {})


def ledger_fields(summary: Any) -> dict[str, Any]:
    """What a ledger record says about the peak and the attempt (empty for summaries without them)."""
    if not isinstance(summary, Mapping):
        return {}
    lr = summary.get("lr") or {}
    out: dict[str, Any] = {}
    if lr.get("peak") is not None:
        out["lr"] = lr.get("peak")
        out["lr_source"] = lr.get("source")
        search = lr.get("search") or {}
        if search:
            out["lr_search"] = {k: search.get(k) for k in ("peak", "rule", "steps", "seconds")}
    if summary.get("attempt") is not None:
        out["attempt"] = summary["attempt"]
        out["attempts"] = len(summary.get("attempts") or [])
    return out


def earlier_attempts(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The attempts before the final one (each with ``status``, ``metrics``, ``lr``, ``attempt``, ``folder``)."""
    attempts = list(summary.get("attempts") or [])
    return attempts[:-1]


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``<run_dir>/metrics.json`` as a dict (``{}`` when missing or unreadable)."""
    return _read_summary(run_dir)


def attempt_records(summary: Mapping[str, Any], overrides: Mapping[str, object], job_dir: Path) -> list[dict[str, Any]]:
    """One ledger record per attempt before the final one (oldest first); the final attempt is the job's record."""
    from src.sweep.ledger import STATUSES, make_record

    records = []
    for entry in earlier_attempts(summary):
        status = entry.get("status") if entry.get("status") in STATUSES else "failed"
        metrics = {k: v for k, v in (entry.get("metrics") or {}).items() if isinstance(v, (int, float))}
        record = make_record(
            overrides=overrides,
            status=status,
            metrics=metrics,
            params=entry.get("params") if isinstance(entry.get("params"), int) else None,
            seconds=float(entry.get("seconds") or 0.0),
            error=f"attempt {entry['attempt']} {status} at peak lr {entry.get('lr'):.4g}; retried at a third of it",
            run_dir=entry.get("folder") or job_dir,
        )
        record.update({"attempt": entry["attempt"], "lr": entry.get("lr"), "retried": True})
        records.append(record)
    return records
