"""Successive halving over a sweep: the rung budgets, the promotion rule and a job's part in a rung.

``python train.py -m first='glob(*)' core='glob(*)' final='glob(*)' sweep.halving.eta=3 sweep.halving.rungs=4``
trains every configuration for ``E / eta^(rungs-1)`` epochs (rung 0, ``E`` = the recipe's epochs, the
largest rung), keeps the top ``1/eta`` of the configurations by the monitored validation metric (mean
over seeds) and trains those on to ``eta`` times the budget, until the survivors reach ``E``. The
rung loop is run by the sweeper (:mod:`src.sweep.halving_sweep`); this module holds what both the
sweeper and the jobs need:

* :func:`halving_plan` reads and checks ``sweep.halving`` (bad input is one :class:`ConfigError` line);
* :func:`rung_budget` gives a rung's budget in epochs (rounded to the nearest whole epoch);
* :func:`promote` is the promotion rule (validation only, ties broken by the configuration key);
* :func:`rung_callbacks` / :func:`rung_checkpoint` are the job's hooks into training.

A promoted job is **continued**, not retrained: every rung of a job trains with ``trainer.max_epochs =
E``, so its learning-rate schedule is the one of the final budget from the first step, and it stops
at the rung's epoch (:class:`StopAtRung`). The next rung resumes from the job's ``last.ckpt`` in the
same job folder. A promoted run is therefore the same run, step for step, as an unpruned run of the
same budget (the resume guarantee of :mod:`src.train_task`), and a rung costs only its new epochs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError

HALVING_DIR = "halving"  # <sweep dir>/halving: plan.json and one rung-<r>.json decision per finished rung
RUNG_FILE = "halving_rung.json"  # <job dir>/halving_rung.json: what the job's last rung trained (steps, budget)
TERMINAL = ("ok", "collapsed", "failed", "rejected", "diverged")  # a job's outcome at a rung (it ran)


@dataclass(frozen=True)
class HalvingPlan:
    """``eta`` and ``rungs`` of a halving sweep and the full budget ``epochs`` (the top rung)."""

    eta: int
    rungs: int
    epochs: int
    metric: str
    mode: str

    def budget(self, rung: int) -> int:
        return rung_budget(self.epochs, self.eta, self.rungs, rung)

    def budgets(self) -> list[int]:
        return [self.budget(r) for r in range(self.rungs)]


def rung_budget(epochs: int, eta: int, rungs: int, rung: int) -> int:
    """Epochs of ``rung``: ``epochs / eta^(rungs-1-rung)`` rounded half up (the top rung is ``epochs``)."""
    return int(math.floor(epochs / eta ** (rungs - 1 - rung) + 0.5))


def _whole_number(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"{key}={value} must be a whole number")
    return int(value)


def halving_settings(cfg: DictConfig) -> DictConfig | None:
    """``sweep.halving`` when halving is asked for (``eta`` or ``rungs`` set), else ``None``."""
    settings = OmegaConf.select(cfg, "sweep.halving", default=None)
    if settings is None or (settings.get("eta") is None and settings.get("rungs") is None):
        return None
    return settings


def halving_plan(cfg: DictConfig) -> HalvingPlan | None:
    """The checked :class:`HalvingPlan` of a config, ``None`` without halving; bad values: one-line ConfigError."""
    settings = halving_settings(cfg)
    if settings is None:
        return None
    for key in ("eta", "rungs"):
        if settings.get(key) is None:
            raise ConfigError(f"sweep.halving.{key} is not set: successive halving needs both eta and rungs")
    eta = _whole_number(settings.eta, "sweep.halving.eta")
    rungs = _whole_number(settings.rungs, "sweep.halving.rungs")
    if eta < 2:
        raise ConfigError(f"sweep.halving.eta={eta} must be at least 2 (each rung keeps the top 1/eta)")
    if rungs < 2:
        raise ConfigError(f"sweep.halving.rungs={rungs} must be at least 2 (rung 0 and the full budget)")
    max_steps = OmegaConf.select(cfg, "trainer.max_steps", default=-1)
    if max_steps not in (None, -1):
        raise ConfigError(
            f"trainer.max_steps={max_steps}: successive halving budgets are epochs (recipe.epochs); "
            "leave trainer.max_steps at -1"
        )
    epochs = _whole_number(OmegaConf.select(cfg, "trainer.max_epochs"), "trainer.max_epochs")
    every = int(OmegaConf.select(cfg, "trainer.check_val_every_n_epoch", default=1) or 1)
    smallest = epochs / eta ** (rungs - 1)
    if smallest < every:
        raise ConfigError(
            f"sweep.halving.rungs={rungs}: with eta={eta} rung 0 would train {epochs}/{eta}^{rungs - 1} = "
            f"{smallest:.2f} epochs, less than one validation interval ({every} epoch{'s' if every > 1 else ''}); "
            "use fewer rungs, a smaller eta or more recipe.epochs"
        )
    metric = str(OmegaConf.select(cfg, "monitor.metric", default="val/pearson"))
    mode = str(OmegaConf.select(cfg, "monitor.mode", default="max"))
    if not metric.startswith("val/"):
        raise ConfigError(f"monitor.metric={metric}: halving promotes by a validation metric (val/...), never test")
    return HalvingPlan(eta=eta, rungs=rungs, epochs=epochs, metric=metric, mode=mode)


def job_rung(cfg: DictConfig) -> int | None:
    """The rung this job trains (``sweep.halving.rung``, set by the halving sweeper), else ``None``."""
    rung = OmegaConf.select(cfg, "sweep.halving.rung", default=None)
    return None if rung is None else int(rung)


# ----------------------------------------------------------------------------- promotion rule


def record_score(record: Mapping[str, Any], metric: str) -> float | None:
    """A record's ranking value of ``metric``: its best epoch's (``<metric>_best``) when recorded, else the last."""
    metrics = record.get("metrics") or {}
    for name in (f"{metric}_best", metric):
        value = metrics.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def config_scores(records: Iterable[Mapping[str, Any]], config_of, metric: str) -> dict[str, float | None]:
    """Mean score over seeds per configuration (``None`` when no seed has a finite score)."""
    values: dict[str, list[float]] = {}
    for record in records:
        score = record_score(record, metric) if record.get("status") == "ok" else None
        values.setdefault(config_of(record), [])
        if score is not None:
            values[config_of(record)].append(score)
    return {config: (sum(v) / len(v) if v else None) for config, v in values.items()}


def promote(scores: Mapping[str, float | None], eta: int, higher: bool) -> list[str]:
    """The configurations that go on: the top ``max(1, n // eta)`` of ``n`` by score.

    Configurations without a score (failed, diverged, collapsed, rejected at this rung) never go on.
    Ties are broken by the configuration key (its sorted overrides), so every launch decides alike.

    This is the synchronous rule of successive halving. Optuna's ``SuccessiveHalvingPruner`` is not
    used: it decides per trial, asynchronously (ASHA), from whatever trials reached a rung so far, and
    needs an Optuna study; a sweep's rung is decided once, over all its configurations and seeds.
    """
    scored = [(s, c) for c, s in scores.items() if s is not None]
    scored.sort(key=lambda item: (-item[0] if higher else item[0], item[1]))
    keep = max(1, len(scores) // eta)
    return [config for _, config in scored[:keep]]


# ----------------------------------------------------------------------------- records


def record_rung(record: Mapping[str, Any]) -> int | None:
    rung = record.get("rung")
    return int(rung) if isinstance(rung, int) and not isinstance(rung, bool) else None


def finished_rung(record: Mapping[str, Any] | None, rung: int) -> bool:
    """Whether a job's latest record says it has done ``rung`` (trained it to an outcome, or was pruned)."""
    if record is None:
        return False
    done = record_rung(record)
    if done is None:
        return False
    if record.get("status") == "pruned":
        return True
    return record.get("status") in TERMINAL and done >= rung


def job_record_fields(job_dir: Path, rung: int) -> dict[str, Any]:
    """The halving fields of a job's record: ``rung``, ``budget_epochs``, ``steps`` and ``full_steps``.

    Read from ``<job dir>/halving_rung.json`` (:class:`StopAtRung` writes it); a job that failed before
    training records only its rung.
    """
    fields: dict[str, Any] = {"rung": rung}
    try:
        info = json.loads((job_dir / RUNG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return fields
    if isinstance(info, dict) and info.get("rung") == rung:
        fields.update({k: info.get(k) for k in ("budget_epochs", "steps", "full_steps")})
    return fields


# ----------------------------------------------------------------------------- the job's training hooks


def _stop_at_rung_class():
    import lightning as L

    class StopAtRung(L.Callback):
        """Stops training at the end of the rung's last epoch; ``max_epochs`` (the schedule) stays the full budget."""

        def __init__(self, rung: int, budget: int, job_dir: Path) -> None:
            self.rung, self.budget, self.job_dir = rung, budget, job_dir

        def _check(self, trainer: L.Trainer) -> None:
            if trainer.current_epoch >= self.budget:
                trainer.should_stop = True

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self._check(trainer)  # resumed from a checkpoint at or past this rung: nothing left to train

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.current_epoch + 1 >= self.budget:
                trainer.should_stop = True

        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.global_rank != 0:
                return
            from src.utils.io import write_json

            info = {
                "rung": self.rung,
                "budget_epochs": self.budget,
                "steps": int(trainer.global_step),
                "full_steps": int(trainer.estimated_stepping_batches),
            }
            write_json(self.job_dir / RUNG_FILE, info)

    return StopAtRung


def rung_callbacks(cfg: DictConfig, run_dir: Path) -> list[Any]:
    """``[StopAtRung]`` for a job of a halving sweep (``sweep.halving.rung`` set), else ``[]``."""
    rung = job_rung(cfg)
    if rung is None:
        return []
    plan = halving_plan(cfg)
    if plan is None:
        raise ConfigError(f"sweep.halving.rung={rung} needs sweep.halving.eta and sweep.halving.rungs")
    return [_stop_at_rung_class()(rung, plan.budget(rung), run_dir)]


def rung_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint a halving job continues from: its folder's ``last.ckpt`` (a promoted or killed job)."""
    if job_rung(cfg) is None:
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None
