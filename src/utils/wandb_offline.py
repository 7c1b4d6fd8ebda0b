"""W&B without the network: offline defaults, opening a run, and finishing whatever run is open.

Every prixfixe W&B run (the training logger, an evaluation run, a sweep summary run) is offline
unless the user asks otherwise (``logger.wandb.mode=online`` or ``WANDB_MODE``); nothing is
downloaded or uploaded at run time. ``wandb sync <run folder>`` uploads later.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "prixfixe"


def use_offline_defaults() -> None:
    """``WANDB_MODE=offline`` and ``WANDB_SILENT=true`` unless the environment already says otherwise."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")


def start_run(mode: str | None = None, project: str | None = None, **kwargs: Any) -> Any:
    """``wandb.init`` with ``mode`` (else ``WANDB_MODE``, else offline) and ``project`` (else
    ``WANDB_PROJECT``, else ``prixfixe``); other keyword arguments go to ``wandb.init``."""
    use_offline_defaults()
    import wandb

    return wandb.init(
        mode=str(mode or os.environ.get("WANDB_MODE") or "offline"),
        project=str(project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT),
        **kwargs,
    )


def finish_run(exit_code: int | None = None) -> None:
    """Finish the open W&B run, if any (never imports wandb, never raises).

    A job that failed leaves its run open; finishing it lets the next run in this process start its own.
    """
    wandb = sys.modules.get("wandb")
    if wandb is None:
        return
    try:
        if getattr(wandb, "run", None) is not None:
            wandb.finish(exit_code=exit_code)
    except Exception as err:  # pragma: no cover - W&B bookkeeping never ends a run or a sweep
        log.warning("could not finish the W&B run: %s", err)
