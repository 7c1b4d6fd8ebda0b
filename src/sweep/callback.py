"""The Hydra callback that writes a sweep's leaderboard and heatmaps when the multirun ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.errors import error_line
from src.lit_modules.metrics import DEFAULT_MONITOR
from src.sweep.ledger import LEDGER_NAME
from src.sweep.outcomes import launch_summary, start_launch

log = logging.getLogger(__name__)


class SummarizeCallback(Callback):
    """Hydra callback: write the sweep's leaderboard and heatmaps when a multirun ends.

    Configured in ``conf/train.yaml`` as ``hydra.callbacks.summarize``; a failure of the summary
    is logged and never fails the sweep. Disable with ``hydra.callbacks.summarize.enabled=false``.
    Then it prints the launch's one-line outcome (``8 jobs: 6 ok, 1 failed, 1 rejected``) and exits
    with status 1 when one of its jobs failed or diverged (:mod:`src.sweep.outcomes`).
    """

    def __init__(
        self, metric: str = DEFAULT_MONITOR, mode: str | None = None, log_wandb: bool = False, enabled: bool = True
    ) -> None:
        self.metric = metric
        self.mode = mode
        self.log_wandb = log_wandb
        self.enabled = enabled
        self.launch: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.launch = start_launch()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            self._summarize(config)
        if self.launch is None or config.get("dry_run"):
            return
        line, status = launch_summary(Path(str(config.hydra.sweep.dir)), self.launch)
        print(line, flush=True)
        if status:
            raise SystemExit(status)  # after the whole sweep and its summary: the launch's exit status

    def _summarize(self, config: DictConfig) -> None:
        try:
            if config.get("dry_run"):
                return
            sweep_dir = Path(str(config.hydra.sweep.dir))
            if not (sweep_dir / LEDGER_NAME).is_file():
                log.info("no ledger in %s: no summary", sweep_dir)
                return
            from src.sweep.summarize import summarize

            result = summarize(sweep_dir, metric=self.metric, log_wandb=self.log_wandb, mode=self.mode)
            print(result["markdown"], end="", flush=True)
            for path in result["paths"]:
                log.info("wrote %s", path)
        except (Exception, SystemExit) as err:  # summarize raises SystemExit subclasses for a bad ledger
            log.warning("sweep summary failed (%s); run `python -m src.sweep.summarize <sweep dir>`", error_line(err))
