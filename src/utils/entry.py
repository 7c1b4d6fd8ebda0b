"""Entry-point wrapper: one clear error line instead of a traceback for bad input or config.

In a Hydra multirun (``python train.py -m ...``) each job goes through the sweep ledger instead
(:func:`src.sweep.job.run_sweep_job`): a finished combination is skipped, a failed one is recorded
and the sweep goes on.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from src.datamodules.errors import ConfigError, DataError
from src.sweep.job import in_multirun, run_sweep_job

log = logging.getLogger(__name__)
USER_ERRORS = (DataError, ConfigError, MissingMandatoryValue, FileNotFoundError)


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run ``task(cfg)``; user errors exit with status 2 and one line (unless ``debug=true``).

    In multirun mode the job is run with the sweep ledger and never raises an ``Exception``.
    """
    if in_multirun():
        return run_sweep_job(task, cfg)
    try:
        return task(cfg)
    except USER_ERRORS as err:
        if cfg.get("debug"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, MissingMandatoryValue):
            message = f"missing required config value {err.full_key} (set it on the command line: {err.full_key}=...)"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
