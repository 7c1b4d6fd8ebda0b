"""``recipe.lr=auto``: the peak learning rate from a range test on a discarded copy of the model.

Before training, Lightning's ``Tuner.lr_find`` trains a deep copy of the freshly initialised model on
the training split only, with the learning rate ramped exponentially from ``recipe.lr_find.min_lr`` to
``recipe.lr_find.max_lr`` over ``recipe.lr_find.num_steps`` steps (one batch per step, drawn from seeded
permutations of the training split, at most ``recipe.lr_find.passes`` passes over it; no validation).
The copy is then thrown away: the real run starts from the seeded initial weights, and the random-number
state is restored afterwards.

The curve (:func:`paired_losses`): each ramp step's loss minus the loss an untouched copy of the initial
model gets on the same batch (plus that loss's mean). Most of a raw ramp's step-to-step scatter is which
reads a batch holds; on the DREAM sample (batch 32) it put the minimum of three regression-head models at
the same early step (lr 4.8e-5, where nothing had been learnt). The initial model carries the same batch
effect, so the difference keeps what the ramp changed. It costs one forward pass per ramp step.

Peak-picking rule (``recipe.lr_find.rule``):

* ``minimum`` (default): the learning rate at the minimum of the smoothed curve, divided by
  ``recipe.lr_find.divisor`` (3). The divisor leans high on purpose: a peak that is too high shows
  itself (the run collapses or diverges, and ``recipe.retries`` starts it again at a third, i.e. the
  conventional minimum / 10), while one that is too low costs accuracy silently. Measured on the menu
  (docs/fair_recipe.md): the best One-Cycle peak lies 0.03x to 10x the minimum depending on the block,
  so no divisor suits every block; 3 came closest, and a grid with ``summarize --select-lr`` is exact.
* ``steepest``: Lightning's suggestion, the steepest descent of the smoothed loss. A gradient of a
  100-point curve is noisy (one lucky batch moves it by a decade), which is why it is not the default.

Smoothing: Lightning records an exponential moving average of the loss (beta 0.98) whose bias correction
is off by one step (the first values are too low, so a short ramp looks like a rising loss) and which lags
by up to about 50 steps (beta / (1 - beta); at 100 steps over 6 decades, up to 3 decades). The raw
per-step losses are recovered from it exactly (:func:`raw_losses`) and smoothed with a centred window of
:data:`WINDOW` steps instead (no lag). Lightning still ends the ramp early when its average exceeds 4 x
its best value; losses from the first non-finite one on are dropped (divergence is how a range test ends).
A minimum counts only when it lies :data:`MIN_DROP` standard errors of the smoothed curve (from the
per-step scatter) below the level the ramp starts from: the lowest point of a flat, scattered curve is
noise, and a peak taken from it would be arbitrary.

Bad input, each one line naming the key to change (exit 2): a training split with fewer than
``num_steps x batch_size / passes`` reads, a ramp whose smoothed loss never falls clearly below its
start, or a non-finite loss before the ramp found its minimum.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import random
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError

log = logging.getLogger(__name__)

AUTO = "auto"
RULES = ("minimum", "steepest")
CURVE_PNG = "lr_find.png"
# what the ramp does when recipe.lr_find is absent (configs written before lr=auto existed)
DEFAULTS = {
    "num_steps": 100,
    "min_lr": 1e-6,
    "max_lr": 1.0,
    "rule": "minimum",
    "divisor": 3.0,
    "skip_begin": 5,
    "passes": 1,
}
MIN_POINTS = 5  # finite smoothed losses the rule needs at least
LIGHTNING_BETA = 0.98  # the moving average of Lightning's _LRCallback
WINDOW = 9  # steps of the centred moving average the rule reads
MIN_DROP = 4.0  # the minimum must lie this many standard errors of the smoothed curve below the start level


def raw_losses(smoothed: list[float], beta: float = LIGHTNING_BETA) -> list[float]:
    """The per-step losses behind Lightning's ``lr_find`` record.

    Lightning stores ``avg_i / (1 - beta ** (i + 2))`` for the ``i``-th step (0-based; it divides by the
    global step + 1 after the step), with ``avg_i = beta * avg_{i-1} + (1 - beta) * loss_i`` and ``avg_-1 = 0``.
    """
    out, previous = [], 0.0
    for i, value in enumerate(smoothed):
        avg = value * (1 - beta ** (i + 2))
        out.append((avg - beta * previous) / (1 - beta))
        previous = avg
    return out


def centred_mean(values: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Moving average over ``window`` steps centred on each step (shorter at the ends)."""
    half = window // 2
    sums = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(len(values))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(values))
    return (sums[hi] - sums[lo]) / (hi - lo)


def is_auto(cfg: DictConfig) -> bool:
    return str(OmegaConf.select(cfg, "recipe.lr", default="")).strip().lower() == AUTO


def finder_options(cfg: DictConfig) -> dict[str, Any]:
    """``recipe.lr_find`` with the defaults filled in."""
    given = OmegaConf.select(cfg, "recipe.lr_find", default=None)
    options = dict(DEFAULTS)
    if given is not None:
        options.update(OmegaConf.to_container(given, resolve=True))  # type: ignore[arg-type]
    return options


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def check_lr_config(cfg: DictConfig) -> None:
    """Reject ``recipe.lr``, ``recipe.retries`` and ``recipe.lr_find`` values that cannot work (no data read)."""
    recipe = cfg.get("recipe")
    if not isinstance(recipe, DictConfig) or "lr" not in recipe:
        return
    lr = recipe.get("lr")
    value = _number(lr)
    if not is_auto(cfg) and (value is None or not math.isfinite(value) or value <= 0):
        raise ConfigError(f"recipe.lr={lr!r} must be a positive number or auto (a learning-rate range test)")
    retries = recipe.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"recipe.retries={retries!r} must be a whole number >= 0 (0: no retry)")
    if not isinstance(recipe.get("lr_rerun", False), bool):
        raise ConfigError(f"recipe.lr_rerun={recipe.get('lr_rerun')!r} must be true or false")
    options = finder_options(cfg)
    steps, fewest = options["num_steps"], MIN_POINTS + int(options["skip_begin"]) + 1
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < fewest:
        raise ConfigError(f"recipe.lr_find.num_steps={steps!r} must be a whole number >= {fewest}")
    passes = options["passes"]
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise ConfigError(f"recipe.lr_find.passes={passes!r} must be a whole number >= 1")
    low, high = _number(options["min_lr"]), _number(options["max_lr"])
    if low is None or high is None or not 0 < low < high:
        raise ConfigError(
            f"recipe.lr_find.min_lr={options['min_lr']!r} and max_lr={options['max_lr']!r} must satisfy 0 < min < max"
        )
    if options["rule"] not in RULES:
        raise ConfigError(f"recipe.lr_find.rule={options['rule']!r} must be one of {', '.join(RULES)}")
    divisor = _number(options["divisor"])
    if divisor is None or divisor < 1:
        raise ConfigError(f"recipe.lr_find.divisor={options['divisor']!r} must be a number >= 1")
    if is_auto(cfg) and OmegaConf.select(cfg, "recipe.scheduler.d_model", default=None):
        raise ConfigError(
            "recipe.lr=auto: recipe.scheduler.d_model sets the peak itself (Noam); set recipe.scheduler.d_model=null"
        )


@dataclass
class LrSearch:
    """One range test: the chosen peak, how it was chosen, the curve and its cost."""

    peak: float
    rule: str
    steps: int
    seconds: float
    min_lr: float
    max_lr: float
    minimum_lr: float  # where the smoothed loss is lowest
    steepest_lr: float  # the steepest descent (Lightning's suggestion)
    lrs: list[float] = field(default_factory=list, repr=False)
    losses: list[float] = field(default_factory=list, repr=False)  # per step, unsmoothed

    def summary(self) -> dict[str, Any]:
        """Everything but the curve (for metrics.json, the ledger, the sweep cache)."""
        return {k: v for k, v in asdict(self).items() if k not in ("lrs", "losses")}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LrSearch:
        names = set(cls.__dataclass_fields__)
        missing = {"peak", "rule", "steps", "seconds", "min_lr", "max_lr", "minimum_lr", "steepest_lr"} - set(data)
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        search = cls(**{k: v for k, v in data.items() if k in names})
        if not (isinstance(search.peak, (int, float)) and math.isfinite(search.peak) and search.peak > 0):
            raise ValueError(f"peak {search.peak!r} is not a positive number")
        return search

    def write_curve(self, path: Path) -> Path:
        """The smoothed loss against the learning rate (log scale), the minimum and the chosen peak marked."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.0, 3.4), layout="constrained")
        ax = fig.subplots()
        losses = np.asarray(self.losses, dtype=float)
        finite = int(np.flatnonzero(~np.isfinite(losses))[0]) if not np.isfinite(losses).all() else len(losses)
        ax.plot(self.lrs, losses, color="C0", lw=0.8, alpha=0.35, label="per step")
        ax.plot(self.lrs[:finite], centred_mean(losses[:finite]), color="C0", lw=1.5, label=f"mean of {WINDOW} steps")
        ax.set_xscale("log")
        start = float(np.nanmax(losses[: max(WINDOW, 1)])) if len(losses) else 1.0
        ax.set_ylim(top=max(start * 1.3, float(np.nanmin(losses[:finite])) + 1e-6) if finite else None)
        ax.axvline(self.minimum_lr, color="0.5", ls=":", lw=1, label=f"minimum {self.minimum_lr:.2g}")
        ax.axvline(self.steepest_lr, color="C2", ls="--", lw=1, label=f"steepest {self.steepest_lr:.2g}")
        ax.axvline(self.peak, color="C3", lw=1.5, label=f"peak ({self.rule}) {self.peak:.2g}")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss, paired with the initial model")
        ax.set_title(f"range test: {self.steps} steps, {self.seconds:.1f} s", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        fig.savefig(path, dpi=100)
        return path


def step_noise(losses: np.ndarray, smoothed: np.ndarray) -> float:
    """Robust standard deviation of the per-step losses around their moving average (median absolute deviation)."""
    residual = np.asarray(losses, dtype=float) - np.asarray(smoothed, dtype=float)
    return float(1.4826 * np.median(np.abs(residual - np.median(residual)))) if residual.size else 0.0


def pick_peak(lrs: list[float], losses: list[float], options: dict[str, Any]) -> tuple[float, float, float]:
    """``(peak, minimum_lr, steepest_lr)`` from a ramp's smoothed losses; ConfigError when no peak can be chosen."""
    skip = int(options["skip_begin"])
    values = np.asarray(losses, dtype=float)  # per-step losses (see raw_losses)
    rates = np.asarray(lrs, dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    end = int(bad[0]) if bad.size else len(values)  # divergence ends the usable curve
    low_key = "recipe.lr_find.min_lr"
    if end - skip < MIN_POINTS:
        raise ConfigError(
            f"recipe.lr=auto: the training loss was non-finite after {end} of {len(values)} range-test steps "
            f"(at lr {rates[min(end, len(rates) - 1)]:.3g}); lower {low_key} or check the data"
        )
    smoothed = centred_mean(values[:end])
    noise = step_noise(values[:end], smoothed) / math.sqrt(WINDOW)  # standard error of one smoothed point
    start = float(np.mean(values[skip : skip + 2 * WINDOW]))  # the level the ramp starts from
    values, rates = smoothed[skip:], rates[skip:end]
    best = int(np.argmin(values))
    fall = start - float(values[best])
    if best == 0 or fall <= MIN_DROP * noise:  # the lowest point of a flat, scattered curve is noise
        raise ConfigError(
            f"recipe.lr=auto: the smoothed training loss never fell clearly below its start over the range test "
            f"({rates[0]:.3g} to {rates[-1]:.3g}; fall {max(fall, 0.0):.3g}, noise {noise:.2g}); "
            "raise recipe.lr_find.max_lr or recipe.lr_find.num_steps"
        )
    if bad.size and best == len(values) - 1:  # still falling when the loss blew up: no minimum was found
        raise ConfigError(
            f"recipe.lr=auto: the training loss became non-finite while still decreasing (at lr {rates[-1]:.3g}); "
            f"lower {low_key} or recipe.lr_find.max_lr"
        )
    slope = np.gradient(values[: best + 1], np.log(rates[: best + 1]))  # best >= 1: at least two points
    steepest = float(rates[int(np.argmin(slope))])
    minimum = float(rates[best])
    peak = minimum / float(options["divisor"]) if options["rule"] == "minimum" else steepest
    return peak, minimum, steepest


class _InitialModelLoss:
    """Scores every ramp batch with an untouched copy of the initial model (no gradients).

    A range test's per-step loss varies mostly with *which* reads a batch holds (a batch of reads near the
    mean is easy for any model), not with the learning rate: on the DREAM sample with batch 32 a regression
    head's loss moves by 20-40 % from one batch to the next while nothing has been learnt yet. The same
    batch scored by the initial model carries the same batch effect, so subtracting it leaves what the
    ramp changed (:func:`paired_losses`). Costs one forward pass per ramp step.
    """

    def __init__(self, module: Any) -> None:
        self.model = copy.deepcopy(module)
        self.model.train()  # the ramp's own mode (dropout, batch statistics); the copy's state is never saved
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.losses: list[float] = []

    def attach(self, probe: Any) -> None:
        """Score each batch the probe trains on (``Tuner.lr_find`` replaces the trainer's callbacks, so the
        probe's own batch-start hook does it)."""
        probe.on_train_batch_start = lambda batch, batch_idx: self.score(batch, probe.device)

    @torch.no_grad()
    def score(self, batch: dict[str, Any], device: torch.device) -> None:
        self.model.to(device)
        head, _ = self.model.net(batch["x"], batch)  # the objective's own loss of the initial predictions
        self.losses.append(float(self.model.objective.loss(head, batch["y"])))


def paired_losses(losses: list[float], baseline: list[float]) -> list[float]:
    """Per-step ramp losses less the initial model's loss on the same batch, plus that loss's mean."""
    if not baseline:
        return list(losses)
    base = np.asarray(baseline[: len(losses)], dtype=float)
    level = float(np.mean(base[np.isfinite(base)])) if np.isfinite(base).any() else 0.0
    return [float(v - b + level) for v, b in zip(losses, base, strict=False)] + list(losses[len(base) :])


def _rng_state() -> tuple[Any, ...]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return torch.get_rng_state(), np.random.get_state(), random.getstate(), cuda


def _set_rng_state(state: tuple[Any, ...]) -> None:
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])
    if state[3] is not None:
        torch.cuda.set_rng_state_all(state[3])


def _finder_loader(datamodule: Any, batch_size: int, steps: int, seed: int, passes: int = 1) -> Any:
    """``steps`` batches of training reads (seeded permutations, at most ``passes`` over the split), no validation."""
    from src.datamodules.datamodule import EpochBatchSampler

    n = len(datamodule.train_set)
    if n * passes < steps * batch_size:
        raise ConfigError(
            f"recipe.lr=auto: the training split has {n} reads, fewer than recipe.lr_find.num_steps={steps} "
            f"x recipe.batch_size={batch_size} / recipe.lr_find.passes={passes}; lower recipe.lr_find.num_steps, "
            "allow more passes, or use more data"
        )
    return datamodule._loader(datamodule.train_set, EpochBatchSampler(n, batch_size, True, seed, steps))


def find_peak(cfg: DictConfig, module: Any, datamodule: Any) -> LrSearch:
    """Run the range test on a copy of ``module`` (left untouched) and pick the peak (see the module doc)."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.tuner import Tuner
    from lightning.pytorch.tuner import lr_finder as lr_finder_module

    options = finder_options(cfg)
    steps = int(options["num_steps"])
    loader = _finder_loader(datamodule, int(cfg.recipe.batch_size), steps, int(cfg.seed), int(options["passes"]))
    probe = copy.deepcopy(module)
    probe.hparams.recipe = {**probe.hparams.recipe, "lr": float(options["min_lr"]), "scheduler": None}
    probe._check_finite = lambda: None  # a ramp ends in divergence by design; its losses are judged below
    state = _rng_state()
    started = time.time()
    initial = _InitialModelLoss(module)
    initial.attach(probe)
    with tempfile.TemporaryDirectory(prefix="prixfixe-lr-find-") as scratch:
        trainer: L.Trainer = instantiate(
            cfg.trainer,
            default_root_dir=scratch,
            logger=False,
            callbacks=[],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            max_epochs=1,
            max_steps=-1,
            limit_train_batches=None,
            limit_val_batches=0,
            val_check_interval=None,
            num_sanity_val_steps=0,
            fast_dev_run=False,
        )
        bar = lr_finder_module.tqdm
        lr_finder_module.tqdm = functools.partial(bar, disable=True)  # the finder's own bar (always on in Lightning)
        try:
            with warnings.catch_warnings():  # no validation in a range test, on purpose
                warnings.filterwarnings(
                    "ignore", message="You defined a `validation_step` but have no `val_dataloader`"
                )
                finder = Tuner(trainer).lr_find(
                    probe,
                    train_dataloaders=loader,
                    min_lr=float(options["min_lr"]),
                    max_lr=float(options["max_lr"]),
                    num_training=steps,
                    mode="exponential",
                    early_stop_threshold=4.0,
                    update_attr=False,
                )
        finally:
            lr_finder_module.tqdm = bar
    seconds = time.time() - started
    _set_rng_state(state)
    del probe, initial.model
    if finder is None:  # pragma: no cover - only with trainer.fast_dev_run, which is turned off above
        raise ConfigError("recipe.lr=auto: the range test did not run (trainer.fast_dev_run)")
    lrs = [float(v) for v in finder.results["lr"]]
    taken = len(lrs)  # steps the ramp ran (it may stop early on a diverging loss)
    losses = paired_losses(raw_losses([float(v) for v in finder.results["loss"]]), initial.losses)
    peak, minimum, steepest = pick_peak(lrs, losses, options)
    search = LrSearch(
        peak=peak,
        rule=str(options["rule"]),
        steps=taken,
        seconds=round(seconds, 3),
        min_lr=float(options["min_lr"]),
        max_lr=float(options["max_lr"]),
        minimum_lr=minimum,
        steepest_lr=steepest,
        lrs=lrs,
        losses=losses,
    )
    log.info(
        "lr range test: peak %.3g (%s; minimum %.3g, steepest %.3g) in %d steps, %.1f s",
        peak,
        search.rule,
        minimum,
        steepest,
        taken,
        seconds,
    )
    return search
