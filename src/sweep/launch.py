"""Launch checks of a sweep job: this process's rank and the refusal of script-relaunching DDP in a multirun."""

from __future__ import annotations

import os
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError


def global_rank() -> int:
    """This process's rank when an external launcher (SLURM tasks, torchrun) started several; else 0."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def externally_launched() -> bool:
    env = os.environ
    if "LOCAL_RANK" in env or "TORCHELASTIC_RUN_ID" in env:
        return True
    ntasks = env.get("SLURM_NTASKS", "1").strip()
    return ntasks.isdigit() and int(ntasks) > 1


def _device_count(devices: Any, accelerator: str) -> int:
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    text = str(devices).strip()
    if text.lstrip("-").isdigit():
        n = int(text)
        if n >= 0:
            return n
    if accelerator in ("cpu",):
        return 1
    torch = sys.modules.get("torch")
    try:
        return int(torch.cuda.device_count()) if torch is not None else 1
    except Exception:  # pragma: no cover
        return 1


def check_launch(cfg: DictConfig) -> None:
    """Refuse Lightning's script-relaunching ``ddp`` on several devices in a local multirun.

    Lightning starts the extra DDP processes by running ``sys.argv`` again, which in a multirun is
    the whole sweep. ``ddp_spawn`` (or SLURM starting one task per device) does not have that problem.
    """
    strategy = str(OmegaConf.select(cfg, "trainer.strategy", default="auto") or "auto")
    if not strategy.startswith("ddp") or any(s in strategy for s in ("spawn", "fork", "notebook")):
        return
    if externally_launched():
        return
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    devices = OmegaConf.select(cfg, "trainer.devices", default=1)
    nodes = int(OmegaConf.select(cfg, "trainer.num_nodes", default=1) or 1)
    if _device_count(devices, accelerator) * nodes > 1:
        raise ConfigError(
            f"trainer.strategy={strategy} on several devices would re-run the whole sweep in each process; "
            "in a local multirun use trainer.strategy=ddp_spawn (or a SLURM launcher with one task per device)"
        )
