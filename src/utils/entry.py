"""Entry-point wrapper: one clear error line instead of a traceback for bad input or config."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from src.datamodules.errors import ConfigError, DataError

log = logging.getLogger(__name__)
USER_ERRORS = (DataError, ConfigError, MissingMandatoryValue, FileNotFoundError)


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run ``task(cfg)``; user errors exit with status 2 and one line (unless ``debug=true``)."""
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
