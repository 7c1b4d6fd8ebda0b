"""Checks before any work: config values at composition time, and output folders before the expensive part.

A bad value stops with one line naming its key, before the network is composed or any data is read,
so a typo such as ``recipe.batch_size=0`` or ``trainer.precision=bf17`` costs nothing. An output
folder that cannot be written is found before training or predicting, not after.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, get_args

from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError
from src.lr_range import check_lr_config


def lightning_precisions() -> tuple[str, ...]:
    """Every ``trainer.precision`` value Lightning accepts (as text)."""
    from lightning.fabric.connector import _PRECISION_INPUT

    values: list[str] = []
    for literal in get_args(_PRECISION_INPUT):
        values.extend(str(v) for v in get_args(literal))
    return tuple(values)


def _int(cfg: DictConfig, key: str) -> int | None:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ConfigError(f"{key}={value!r} must be a whole number")
    return int(value)


def _at_least(cfg: DictConfig, key: str, low: int) -> int | None:
    value = _int(cfg, key)
    if value is not None and value < low:
        raise ConfigError(f"{key}={value} must be >= {low}")
    return value


def validate_config(cfg: DictConfig) -> None:
    """Reject values that cannot work; each error names the config key and the allowed range."""
    _at_least(cfg, "recipe.batch_size", 1)
    _at_least(cfg, "datamodule.eval_batch_size", 1)
    _at_least(cfg, "recipe.epochs", 1)
    _at_least(cfg, "recipe.steps_per_epoch", 1)
    _at_least(cfg, "datamodule.num_workers", 0)
    _at_least(cfg, "nan_check_every", 1)
    n_folds = _at_least(cfg, "datamodule.n_folds", 2)
    val_fold = _int(cfg, "datamodule.val_fold")
    if n_folds is not None and val_fold is not None and not 0 <= val_fold < n_folds:
        raise ConfigError(f"datamodule.val_fold={val_fold} must be in [0, datamodule.n_folds={n_folds})")
    _check_trainer(cfg)
    check_lr_config(cfg)  # recipe.lr (a number or auto), recipe.retries, recipe.lr_find


def _check_trainer(cfg: DictConfig) -> None:
    trainer: Any = cfg.get("trainer")
    if not isinstance(trainer, DictConfig):
        return
    precision = trainer.get("precision")
    if precision is not None and str(precision) not in lightning_precisions():
        raise ConfigError(
            f"trainer.precision={precision!r} is not a Lightning precision; use one of "
            + ", ".join(v for v in lightning_precisions() if not v.isdigit())
        )
    _at_least(cfg, "trainer.max_epochs", -1)
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator}: no CUDA GPU is visible to torch "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use trainer=cpu"
            )
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator}: no CUDA GPU is visible to torch "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use trainer=cpu"
            )
    max_steps = _int(cfg, "trainer.max_steps")
    if max_steps is not None and max_steps < -1:
        raise ConfigError(f"trainer.max_steps={max_steps} must be -1 (no limit) or >= 0")


def check_output_folder(folder: str | Path, key: str, create: bool = False) -> Path:
    """``folder`` as a folder this process can write into (or, with ``create``, make), checked before the work.

    A missing parent folder (or, without ``create``, a missing folder), a file in the way, a read-only
    file system or missing permissions raise :class:`ConfigError` naming ``key`` and the path. Nothing
    is left behind: the check creates and removes one empty file (in the parent when ``folder`` is
    still to be made), since permission bits do not tell the whole story (a read-only mount, root).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{key}: {folder} is a file, expected a folder")
    target = folder
    if not folder.exists():
        if not folder.parent.is_dir():
            raise ConfigError(f"{key}: the parent folder {folder.parent} of {folder} does not exist")
        if not create:
            raise ConfigError(f"{key}: folder {folder} does not exist")
        target = folder.parent
    probe = target / f".write-check.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as err:
        verb = "write in" if target == folder else "create"
        raise ConfigError(f"{key}: cannot {verb} {folder}: {err.strerror or err}") from None
    return folder
