"""Resuming a finished run: nothing to do is done without writing; a continued run keeps its history.

:func:`completed_run`: ``resume=true`` (or ``ckpt_path=``) in a run folder whose ``metrics.json`` says
the run ended (``ok`` or ``collapsed``), from the checkpoint's own step, with the requested
``trainer.max_epochs`` / ``trainer.max_steps`` already reached, prints one line
(``run already complete (epoch E of E); nothing to do``) and returns that summary; the caller then
writes nothing (no new logger versions, no second W&B run, ``metrics.json`` untouched).

:func:`keep_history`: a resumed run that trains on (more epochs, a higher ``max_steps``, or after an
interrupt) rewrites ``metrics.json`` with its new final values and lists the earlier summaries of the
folder under ``previous`` (status, epochs, step, metrics, best score and checkpoint), so no earlier
validation value is lost.

:func:`interrupted_job_checkpoint`: a sweep job whose folder holds an interrupted run (status
``interrupted``, :mod:`src.interrupts`) continues from its ``last.ckpt`` when the sweep command runs
again (``sweep.rerun=true`` starts it anew).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src.sweep.identity import in_multirun

log = logging.getLogger(__name__)

FINISHED = ("ok", "collapsed")
HISTORY_KEYS = ("status", "epochs", "global_step", "metrics", "best_score", "best_checkpoint", "seconds")


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The folder's ``metrics.json`` as a dict, or ``None`` (absent or unreadable)."""
    try:
        summary = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _limit(cfg: DictConfig, key: str) -> int | None:
    value = OmegaConf.select(cfg, key, default=None)
    return None if value is None or int(value) < 0 else int(value)


def _checkpoint_step(ckpt_path: str) -> int | None:
    try:
        return int(torch.load(ckpt_path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - check_resume has verified it; anything odd means "not known finished"
        return None


def completed_run(cfg: DictConfig, run_dir: Path, ckpt_path: str | None) -> dict[str, Any] | None:
    """The finished run's summary when resuming it would train nothing (the line is printed); else ``None``."""
    if not ckpt_path:
        return None
    summary = read_summary(run_dir)
    if summary is None or summary.get("status") not in FINISHED:
        return None
    epochs, step = summary.get("epochs"), summary.get("global_step")
    if not isinstance(epochs, int) or not isinstance(step, int) or _checkpoint_step(ckpt_path) != step:
        return None  # the checkpoint is not the run's final state: resuming from it trains
    max_epochs, max_steps = _limit(cfg, "trainer.max_epochs"), _limit(cfg, "trainer.max_steps")
    if max_steps is not None and step >= max_steps:
        print(f"run already complete (step {step} of {max_steps}); nothing to do", flush=True)
    elif max_epochs is not None and epochs >= max_epochs:
        print(f"run already complete (epoch {epochs} of {max_epochs}); nothing to do", flush=True)
    else:
        return None
    return summary


def keep_history(summary: dict[str, Any], run_dir: Path, resumed: bool) -> dict[str, Any]:
    """``summary`` with the folder's earlier summaries under ``previous`` (a resumed run only)."""
    earlier = read_summary(run_dir) if resumed else None
    if earlier is None:
        return summary
    previous = [p for p in earlier.get("previous") or [] if isinstance(p, dict)]
    previous.append({k: earlier.get(k) for k in HISTORY_KEYS if k in earlier})
    return {**summary, "previous": previous}


def interrupted_job_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """``last.ckpt`` of a sweep job that a signal interrupted, to continue from (see the module doc); else ``None``."""
    if not in_multirun() or OmegaConf.select(cfg, "sweep.rerun", default=False):
        return None
    summary = read_summary(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if summary is None or summary.get("status") != "interrupted" or not last.is_file():
        return None
    log.info("continuing the interrupted job from %s", last)
    return str(last)
