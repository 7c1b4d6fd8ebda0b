"""Team data processing (autosome, bhi, unlockdna, camformers, nad, sysu, metformin, onehot); see :mod:`.base`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.datamodules.processing.base import Processing


def build_processing(cfg: Mapping[str, Any] | DictConfig) -> Processing:
    """Instantiate a ``conf/processing`` entry (its ``name`` key is the config's label, not an argument)."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    plain.pop("name", None)
    return instantiate(plain)
