"""Where the apps start: resolver registration and the wrapper that turns user errors into one line.

``train.py``, ``predict.py`` and ``evaluate.py`` import this module, which registers the resolvers
(:func:`register_resolvers`) before Hydra composes their config, and run their task through
:func:`run_task`. Registration happens on import so that every process that runs a job has the
resolvers before Hydra resolves the job's folder: a joblib (loky) worker only unpickles the entry
point, whose reference to :func:`run_task` imports this module. Exit statuses come from
:func:`src.errors.exit_code` (2: bad input data or config; 3: training diverged, ``metrics.json``
says so). ``debug=true`` raises the exception instead.

In a Hydra multirun (``python train.py -m ...``) each job goes through the sweep ledger instead
(:func:`src.sweep.job.run_sweep_job`): a finished combination is skipped, a failed one is recorded
and the sweep goes on.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.datamodules.splits import fold_of_pair
from src.errors import EXIT_USER_ERROR, exit_code, user_message
from src.sweep.identity import in_multirun
from src.sweep.job import run_sweep_job
from src.utils.naming import combination_of, safe_dirname
from src.utils.run_dir import remove_unused_run_dir

log = logging.getLogger(__name__)


def _combination(*, _root_: DictConfig) -> str:
    return combination_of(_root_)


def register_resolvers() -> None:
    """Register the OmegaConf resolvers ``conf/`` uses; call before Hydra composes a config.

    ``${pf.combination:}``: the composed config's ``<first>-<core>-<final>`` name (run folders, W&B
    run names). ``${pf.dirname:text}``: a file-system safe job folder name (``hydra.sweep.subdir``).
    ``${pf.fold:pair,n_folds,role,default}``: the test or validation fold of ``data.fold_pair``.
    Also silences Hydra's note that ``conf/hydra/launcher/*.yaml`` are validated against the launcher
    plugins' schemas (they share their names on purpose).
    """
    OmegaConf.register_new_resolver("pf.combination", _combination, replace=True)
    OmegaConf.register_new_resolver("pf.dirname", safe_dirname, replace=True)
    OmegaConf.register_new_resolver("pf.fold", fold_of_pair, replace=True)
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\S+' is validated against ConfigStore schema")


def single_console_logging() -> None:
    """Print each log line once: drop Lightning's own console handler when the root logger (Hydra's) has one.

    ``import lightning`` adds a ``"INFO: ..."`` console handler to the ``lightning`` logger, whose records
    also reach the root logger's handler, so every Lightning line appeared twice.
    """
    root = logging.getLogger()
    if not root.handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True


def remove_empty_run_dir(cfg: DictConfig) -> None:
    """Remove the run folder Hydra made for this run when a user error left it empty (see ``remove_unused_run_dir``)."""
    run_dir = OmegaConf.select(cfg, "paths.run_dir", default=None, throw_on_resolution_failure=False)
    if run_dir:
        remove_unused_run_dir(Path(str(run_dir)))


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run ``task(cfg)``; user errors and divergence exit with one line (unless ``debug=true``).

    In multirun mode the job is run with the sweep ledger and never raises an ``Exception``.
    """
    single_console_logging()
    if in_multirun():
        return run_sweep_job(task, cfg)
    try:
        return task(cfg)
    except Exception as err:
        code = exit_code(err)
        if cfg.get("debug") or code is None:
            raise
        if code == EXIT_USER_ERROR:
            remove_empty_run_dir(cfg)
        print(f"error: {user_message(err)}", file=sys.stderr)
        sys.exit(code)


register_resolvers()
