"""Entry-point wrapper: one clear error line instead of a traceback for bad input, config or divergence.

Exit status 2: bad input data or config; 3: training diverged (NaN/inf loss; ``metrics.json`` says so).
``debug=true`` raises the exception instead.

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
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run ``task(cfg)``; user errors and divergence exit with one line (unless ``debug=true``).

    In multirun mode the job is run with the sweep ledger and never raises an ``Exception``.
    """
    if in_multirun():
        return run_sweep_job(task, cfg)
    try:
        return task(cfg)
    except Exception as err:
        from src.lit_modules.prixfixe_module import DivergedError  # imports torch: only when needed

        if cfg.get("debug") or not isinstance(err, (*USER_ERRORS, DivergedError)):
            raise
        message = _first_line(err)
        if isinstance(err, MissingMandatoryValue):
            message = f"missing required config value {err.full_key} (set it on the command line: {err.full_key}=...)"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_DIVERGED if isinstance(err, DivergedError) else EXIT_USER_ERROR)
