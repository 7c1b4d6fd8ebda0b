"""One job of a resumable sweep: the ledger bookkeeping around a training task in a Hydra multirun.

The other concerns of a job live next to it: identity (:mod:`.identity`), launch checks
(:mod:`.launch`), W&B/CUDA separation (:mod:`.isolation`) and the end-of-sweep summary (:mod:`.callback`).

``python train.py -m first='glob(*)' core='glob(*)' final='glob(*)'`` runs every combination; in
multirun mode :func:`src.entry.run_task` hands each job to :func:`run_sweep_job`, which

* derives the job's identity (:mod:`src.sweep.identity`) from its task overrides;
* skips the job when the sweep's ledger already holds an ``ok`` record for it (unless
  ``sweep.rerun=true``), so re-running the same command resumes an interrupted sweep;
* otherwise runs it and appends one record: ``ok`` (metrics, params, seconds, peak memory),
  ``rejected`` (the blocks cannot be composed), ``diverged`` (NaN/inf loss) or ``failed``
  (anything else; the full traceback goes to ``<job dir>/error.log``);
* never re-raises an ``Exception``, so one bad combination cannot end the sweep (Hydra's
  launchers would abort the remaining batch and skip ``on_multirun_end``).

``dry_run=true`` jobs only compose and print; they neither skip nor append.
:class:`src.sweep.callback.SummarizeCallback` (``hydra.callbacks.summarize``) writes the leaderboard and heatmaps
when the multirun ends (``python -m src.sweep.summarize <sweep dir>`` does the same by hand).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from src.errors import CompositionError, DivergedError, Interrupted, LedgerCorruptError, error_line
from src.lit_modules.metrics import DEFAULT_MONITOR
from src.retries import attempt_records, ledger_fields, read_summary
from src.sweep.claims import try_claim
from src.sweep.halving import finished_rung, job_record_fields, job_rung
from src.sweep.identity import JobContext, job_context
from src.sweep.isolation import reset_cuda_peak, set_wandb_group
from src.sweep.launch import check_launch, externally_launched, global_rank
from src.sweep.ledger import append_record, latest_by_key, make_record, peak_memory_mb, read_ledger
from src.sweep.outcomes import launch_started, note_outcome
from src.utils.wandb_offline import finish_run

log = logging.getLogger(__name__)

ERROR_LOG = "error.log"


def classify(err: BaseException) -> str:
    """Ledger status of a job that raised ``err``."""
    if isinstance(err, CompositionError):
        return "rejected"
    if isinstance(err, DivergedError):
        return "diverged"
    return "failed"


def _partial_summary(job_dir: Path) -> dict[str, Any]:
    """``metrics.json`` of a job that wrote one before failing (a diverged run), else ``{}``."""
    try:
        summary = json.loads((job_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(summary, dict):
        return {}
    params = summary.get("params")
    return {
        "metrics": {k: v for k, v in (summary.get("metrics") or {}).items() if isinstance(v, (int, float))},
        "params": params if isinstance(params, int) else None,
    }


def test_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """``test/<score>`` for every number in the summary's ``test`` block (the DREAM test-suite scores)."""
    test = summary.get("test")
    if not isinstance(test, Mapping):
        return {}
    return {
        f"test/{name}": float(value)
        for name, value in test.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _ok_record(summary: Any, ctx: JobContext, seconds: float) -> dict[str, Any]:
    summary = summary if isinstance(summary, Mapping) else {}
    metrics = dict(summary.get("metrics") or {})
    best = summary.get("best_score")
    if best is not None:  # the monitored metric's best epoch, e.g. val/pearson_best
        metrics.setdefault(f"{summary.get('monitor') or DEFAULT_MONITOR}_best", best)
    metrics.update(test_metrics(summary))
    status = "collapsed" if summary.get("status") == "collapsed" else "ok"
    return make_record(
        overrides=ctx.overrides,
        status=status,
        metrics=metrics,
        params=summary.get("params"),
        seconds=seconds,
        peak_memory_mb=peak_memory_mb(),
        run_dir=ctx.job_dir,
    )


def run_ledgered(task: Callable[[DictConfig], Any], cfg: DictConfig, ctx: JobContext) -> Any:
    """Run ``task(cfg)`` as one sweep job described by ``ctx`` (see the module doc)."""
    key = ctx.key
    dry_run = bool(cfg.get("dry_run"))
    writer = global_rank() == 0  # with one process per device, only rank 0 keeps the books
    if not dry_run and not ctx.rerun:
        try:
            previous = latest_by_key(read_ledger(ctx.ledger)).get(key)
        except LedgerCorruptError as err:
            log.error("cannot read the sweep ledger (%s); running the job", err)
            previous = None
        if previous is not None and _done(previous, ctx):
            log.info("skip %s: already ok in %s (sweep.rerun=true runs it again)", key, ctx.ledger)
            note_outcome(ctx.sweep_dir, key, "skipped")
            metrics = previous.get("metrics") or {}
            return {"status": "skipped", "key": key, "metrics": metrics, "best_score": None}
    claim = None
    if not dry_run and writer and not externally_launched():
        claim = try_claim(ctx.sweep_dir, key, ctx.claim_timeout)
        if claim is None or _recorded_meanwhile(ctx, key):
            if claim is not None:
                claim.release()
            log.info("skip %s: another launch of this sweep runs or ran it", key)
            note_outcome(ctx.sweep_dir, key, "elsewhere")
            return {"status": "elsewhere", "key": key, "metrics": {}, "best_score": None}
    try:
        return _run_claimed(task, cfg, ctx, dry_run, writer)
    finally:
        if claim is not None:
            claim.release()  # after the record: a later launch sees the record, not a free job


def _recorded_meanwhile(ctx: JobContext, key: str) -> bool:
    """Whether another launch recorded ``key`` after this launch started (it finished while we looked)."""
    started = launch_started()
    try:
        latest = latest_by_key(read_ledger(ctx.ledger)).get(key)
    except LedgerCorruptError:
        return False
    if latest is None:
        return False
    if "rung" in ctx.extra:  # a halving job: recorded when the ledger holds its outcome at this rung
        return finished_rung(latest, ctx.extra["rung"])
    if latest.get("status") == "ok" and not ctx.rerun:
        return True
    if started is None:
        return False
    try:
        recorded = datetime.fromisoformat(str(latest.get("time"))).timestamp()
    except ValueError:
        return False
    return recorded >= int(started)


def _run_claimed(
    task: Callable[[DictConfig], Any], cfg: DictConfig, ctx: JobContext, dry_run: bool, writer: bool
) -> Any:
    """Run the job and append its record (the part of :func:`run_ledgered` under the claim)."""
    key = ctx.key
    set_wandb_group(cfg, ctx.sweep_dir.name)
    reset_cuda_peak()
    log.info("job %s -> %s", key, ctx.job_dir)
    started = time.time()
    try:
        check_launch(cfg)
        summary = task(cfg)
    except Interrupted as err:  # SIGINT/SIGTERM: recorded, then the sweep stops with the signal's exit status
        if not dry_run and writer:
            _record_interrupted(ctx, err, time.time() - started)
        raise
    except Exception as err:
        seconds = time.time() - started
        finish_run(exit_code=1)
        status = classify(err)
        message = error_line(err)
        if cfg.get("debug"):
            log.error("%s %s", status, key, exc_info=err)
        else:
            log.error("%s %s: %s", status, key, message)
        if dry_run or not writer:
            return None
        try:
            ctx.job_dir.mkdir(parents=True, exist_ok=True)
            (ctx.job_dir / ERROR_LOG).write_text(
                f"job: {key}\nstatus: {status}\n\n" + "".join(traceback.format_exception(err)), encoding="utf-8"
            )
        except OSError as io_err:  # pragma: no cover - the record still says what happened
            log.warning("could not write %s: %s", ctx.job_dir / ERROR_LOG, io_err)
        partial = _partial_summary(ctx.job_dir) if status == "diverged" else {}
        record = make_record(
            overrides=ctx.overrides,
            status=status,
            metrics=partial.get("metrics"),
            params=partial.get("params"),
            seconds=seconds,
            peak_memory_mb=peak_memory_mb(),
            error=message,
            run_dir=ctx.job_dir,
        )
        final = read_summary(ctx.job_dir) if status == "diverged" else {}
        _append_attempts(ctx, final)  # recipe.retries: the earlier attempts first, the final one last
        _append(ctx.ledger, {**record, **_halving_fields(ctx), **ledger_fields(final)})
        note_outcome(ctx.sweep_dir, key, status)
        return None
    if dry_run or not writer:
        return summary
    record = _ok_record(summary, ctx, time.time() - started)
    _append_attempts(ctx, summary)
    _append(ctx.ledger, {**record, **_halving_fields(ctx), **ledger_fields(summary)})
    note_outcome(ctx.sweep_dir, key, record["status"])
    return summary


def _done(previous: Mapping[str, Any], ctx: JobContext) -> bool:
    """Whether the job is done already: ``ok`` (a halving job: it has an outcome at its rung, or was pruned)."""
    if "rung" in ctx.extra:
        return finished_rung(previous, ctx.extra["rung"])
    return previous.get("status") == "ok"


def _halving_fields(ctx: JobContext) -> dict[str, Any]:
    """``rung``, ``budget_epochs``, ``steps``, ``full_steps`` of a halving job's record; ``{}`` for other jobs."""
    return {} if "rung" not in ctx.extra else job_record_fields(ctx.job_dir, ctx.extra["rung"])


def _append_attempts(ctx: JobContext, summary: Any) -> None:
    """A record per earlier attempt of a retried job (``recipe.retries``); none for a job trained once."""
    for record in attempt_records(summary if isinstance(summary, Mapping) else {}, ctx.overrides, ctx.job_dir):
        _append(ctx.ledger, record)


def _record_interrupted(ctx: JobContext, err: Interrupted, seconds: float) -> None:
    """An ``interrupted`` record (the job's ``last.ckpt`` holds the step it reached)."""
    partial = _partial_summary(ctx.job_dir)
    record = make_record(
        overrides=ctx.overrides,
        status="interrupted",
        metrics=partial.get("metrics"),
        params=partial.get("params"),
        seconds=seconds,
        peak_memory_mb=peak_memory_mb(),
        error=f"Interrupted: {err}" + (f" at step {err.step}" if err.step is not None else ""),
        run_dir=ctx.job_dir,
    )
    _append(ctx.ledger, record)
    note_outcome(ctx.sweep_dir, ctx.key, "interrupted")


def _append(ledger: Path, record: Mapping[str, Any]) -> None:
    """Append to the ledger; an I/O error is logged (the job will simply run again next time)."""
    try:
        append_record(ledger, record)
    except OSError as err:
        log.error(
            "could not append the %s record of %s to %s: %s", record.get("status"), record.get("key"), ledger, err
        )


def run_sweep_job(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run one job of a Hydra multirun with the sweep ledger (skip if ok, record the outcome)."""
    ctx = job_context(cfg)
    rung = job_rung(cfg)
    if rung is not None:  # a job of a halving sweep, launched for one rung (src/sweep/halving_sweep.py)
        ctx.extra["rung"] = rung
    return run_ledgered(task, cfg, ctx)


__all__ = ("ERROR_LOG", "classify", "run_ledgered", "run_sweep_job")
