"""Where a run's peak learning rate comes from, and where it is reported.

``recipe.lr`` is either a number (``source: set``) or ``auto``: then :func:`resolve_peak` runs the range
test (:mod:`src.lr_range`; ``source: search``), takes it from the sweep's cache (:mod:`src.sweep.lr_cache`;
``source: cache``) or, when resuming, from the checkpoint (``source: checkpoint``). The peak replaces
``auto`` in the config and in the module's recipe (so checkpoints and ``config.yaml`` hold the number the
schedule used). The peak goes into ``metrics.json`` (``lr``), the sweep ledger, the W&B run config
(``recipe.lr`` and ``lr/*``) and the log; the range test's curve into ``<run>/lr_find.png``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from src.lr_range import CURVE_PNG, LrSearch, find_peak, is_auto

log = logging.getLogger(__name__)


@dataclass
class PeakLr:
    """The peak learning rate of a run and its origin."""

    peak: float
    source: str  # set, search, cache, checkpoint
    search: LrSearch | None = None

    def record(self) -> dict[str, Any]:
        """The ``lr`` block of ``metrics.json``."""
        out: dict[str, Any] = {"peak": self.peak, "source": self.source}
        if self.search is not None:
            out["search"] = self.search.summary()
        return out

    def wandb_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lr/peak": self.peak, "lr/source": self.source}
        if self.search is not None:
            out.update({"lr/rule": self.search.rule, "lr/search_steps": self.search.steps})
            out["lr/search_seconds"] = self.search.seconds
        return out


def _checkpoint_peak(ckpt_path: str) -> float:
    import torch

    hparams = torch.load(ckpt_path, map_location="cpu", weights_only=True).get("hyper_parameters") or {}
    return float((hparams.get("recipe") or {})["lr"])


def _sweep_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    from src.sweep.identity import in_multirun

    return Path(str(HydraConfig.get().sweep.dir)).absolute() if in_multirun() else None


def resolve_peak(cfg: DictConfig, module: Any, datamodule: Any, ckpt_path: str | None = None) -> PeakLr:
    """The run's peak; with ``recipe.lr=auto`` found (or reused) and written into ``cfg`` and ``module``."""
    if not is_auto(cfg):
        return PeakLr(float(cfg.recipe.lr), "set")
    if ckpt_path:
        peak = PeakLr(_checkpoint_peak(ckpt_path), "checkpoint")
    else:
        sweep_dir = _sweep_dir()
        if sweep_dir is None:
            peak = PeakLr(0.0, "search", find_peak(cfg, module, datamodule))
        else:
            from src.sweep.lr_cache import cache_identity, cached_search

            search, source = cached_search(
                sweep_dir,
                cache_identity(cfg),
                lambda: find_peak(cfg, module, datamodule),
                rerun=bool(cfg.recipe.get("lr_rerun", False)),
                claim_timeout=float((cfg.get("sweep") or {}).get("claim_timeout", 600.0)),
            )
            peak = PeakLr(0.0, source, search)
        peak.peak = float(peak.search.peak)  # type: ignore[union-attr]
    with open_dict(cfg):
        cfg.recipe.lr = peak.peak
    module.hparams.recipe = {**module.hparams.recipe, "lr": peak.peak}
    log.info("peak learning rate %.4g (recipe.lr=auto, %s)", peak.peak, peak.source)
    return peak


def report_peak(peak: PeakLr, run_dir: Path, loggers: list[Any]) -> None:
    """The range test's curve into the run folder, the peak into the W&B run config."""
    if peak.search is not None and peak.search.lrs:
        peak.search.write_curve(run_dir / CURVE_PNG)
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.config.update(peak.wandb_config(), allow_val_change=True)
