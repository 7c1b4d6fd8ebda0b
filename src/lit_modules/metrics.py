"""The metric registry: validation metrics by name, their direction, and the monitored metric's default.

A final block's config may list ``metrics:`` (names below); without it every run computes
:data:`DEFAULT_METRICS`. The module logs each as ``val/<name>``, plus ``val/loss``. The run's
``monitor:`` (``conf/train.yaml``; default :data:`DEFAULT_MONITOR`, mode max) picks the metric the
best checkpoint, the sweep ledger, the leaderboard and the return value of ``train.py`` follow.

Importing this module does not import torch (torchmetrics is imported by :func:`build_metrics`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from src.errors import ConfigError

DEFAULT_MONITOR = "val/pearson"
DEFAULT_MODE = "max"
MODES = ("max", "min")
# metric names (last path part) that are errors: lower is better
LOWER_IS_BETTER = ("mse", "rmse", "mae", "loss")


@dataclass(frozen=True)
class MetricSpec:
    """A validation metric: its ``torchmetrics`` class and whether higher values are better."""

    torchmetrics_class: str
    higher_is_better: bool


METRICS: dict[str, MetricSpec] = {
    "pearson": MetricSpec("PearsonCorrCoef", True),
    "spearman": MetricSpec("SpearmanCorrCoef", True),
    "mse": MetricSpec("MeanSquaredError", False),
}
DEFAULT_METRICS: tuple[str, ...] = ("pearson", "spearman", "mse")


def metric_names(final: Mapping[str, Any] | None) -> list[str]:
    """The metrics a final block's config asks for (``metrics:``), else :data:`DEFAULT_METRICS`."""
    names = (final or {}).get("metrics")
    return list(names) if names else list(DEFAULT_METRICS)


def build_metrics(names: Sequence[str], n_targets: int) -> Any:
    """A ``torchmetrics.MetricCollection`` of the named metrics; an unknown name -> ConfigError."""
    import torchmetrics

    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(f"final.metrics: unknown metric(s) {unknown}; available: {sorted(METRICS)}")
    return torchmetrics.MetricCollection(
        {n: getattr(torchmetrics, METRICS[n].torchmetrics_class)(num_outputs=n_targets) for n in names}
    )


def higher_is_better(metric: str) -> bool:
    """Direction of a logged metric (``val/pearson``, ``val/mse_best``...): the registry's, else by its name."""
    name = metric.rsplit("/", 1)[-1].lower().removesuffix("_best")
    if name in METRICS:
        return METRICS[name].higher_is_better
    return name not in LOWER_IS_BETTER


def monitor_of(cfg: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(metric, mode)`` of a config's ``monitor:`` (defaults: :data:`DEFAULT_MONITOR`, max); checks the mode."""
    monitor = (cfg or {}).get("monitor") or {}
    metric = str(monitor.get("metric") or DEFAULT_MONITOR)
    mode = str(monitor.get("mode") or DEFAULT_MODE)
    if mode not in MODES:
        raise ConfigError(f"monitor.mode: {mode!r} is not one of {', '.join(MODES)}")
    return metric, mode


def check_monitor(metric: str, names: Sequence[str], key: str = "monitor.metric") -> None:
    """A monitored metric must be one the module logs (``val/loss`` or ``val/<name>``); else ConfigError on ``key``."""
    logged = ["val/loss", *(f"val/{n}" for n in names)]
    if metric not in logged:
        raise ConfigError(f"{key}: {metric!r} is not logged by this run (logged: {', '.join(logged)})")
