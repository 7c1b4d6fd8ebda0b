"""Team data processing (autosome, bhi, unlockdna, camformers, nad, sysu, metformin, onehot); see :mod:`.base`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.datamodules.processing.base import Processing
from src.errors import ConfigError


def build_processing(cfg: Mapping[str, Any] | DictConfig) -> Processing:
    """Instantiate a ``conf/processing`` entry (its ``name`` key is the config's label, not an argument)."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    plain.pop("name", None)
    try:
        return instantiate(plain)
    except InstantiationException as err:  # a bad value: the processing's own one-line ConfigError
        if isinstance(err.__cause__, ConfigError):
            raise err.__cause__ from None
        raise
