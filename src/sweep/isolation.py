"""Keep the jobs that share a process apart: their own W&B group and run, their own CUDA peak memory.

A failed job's open W&B run is ended by :func:`src.utils.wandb_offline.finish_run`.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf, open_dict


def reset_cuda_peak() -> None:
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
    except Exception:  # pragma: no cover
        pass


def set_wandb_group(cfg: DictConfig, group: str) -> None:
    """Group the job's W&B run under the sweep folder name (unless ``logger.wandb.group`` was set)."""
    wandb_cfg = OmegaConf.select(cfg, "logger.wandb", default=None)
    if not isinstance(wandb_cfg, DictConfig) or wandb_cfg.get("group") is not None:
        return
    with open_dict(wandb_cfg):
        wandb_cfg.group = group
