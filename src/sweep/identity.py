"""Who a sweep job is: its identity overrides, its ledger key and where it sits (:class:`JobContext`).

A job's identity is its task overrides without the keys that do not change its result
(:data:`NON_IDENTITY_KEYS` and the ``hydra.job.config.override_dirname.exclude_keys`` of the config,
except the block groups), with the first/core/final blocks always named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from src.sweep.ledger import COMBINATION_KEYS, LEDGER_NAME, job_key

# overrides that never change a job's result: left out of its key (and of its folder name, see conf/train.yaml)
NON_IDENTITY_KEYS = frozenset(
    {
        "dry_run",
        "debug",
        "resume",
        "ckpt_path",
        "sweep.name",
        "sweep.rerun",
        "sweep.claim_timeout",
        "sweep.halving.eta",  # the halving settings: a job is the same job at every rung
        "sweep.halving.rungs",
        "sweep.halving.rung",
        "sweep.halving.poll_s",
        "logger",
        "logger.wandb.mode",
        "trainer.enable_progress_bar",
        "trainer.enable_model_summary",
    }
)
NON_IDENTITY_PREFIXES = ("hydra.", "hydra/")


def _override_value(text: str) -> object:
    """The value of ``name=value`` as Hydra parses it (``8`` -> 8, ``[1,2]`` -> [1, 2]); the raw text on failure."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_override(f"k={text}")
        value = parsed.value()
    except Exception:  # pragma: no cover - the override was already parsed once by Hydra
        return text
    return _plain_value(value)


def _plain_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def identity_overrides(
    task_overrides: Iterable[str],
    exclude: Iterable[str] = (),
    choices: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The overrides that define a job: ``{name: value}`` without ``+``/``++`` and without non-identity keys.

    ``choices`` (Hydra's ``runtime.choices``) fills in the first/core/final blocks that were not
    overridden, so a job's key always names its three blocks.
    """
    excluded = set(NON_IDENTITY_KEYS) | {e.lstrip("+~") for e in exclude}
    out: dict[str, object] = {}
    for item in task_overrides:
        text = str(item)
        name, sep, value = text.partition("=")
        deletion = name.startswith("~")
        plain = name.lstrip("+~").strip()
        if plain in excluded or plain.startswith(NON_IDENTITY_PREFIXES):
            continue
        if deletion:
            out["~" + plain] = _override_value(value) if sep and value else None
        else:
            out[plain] = _override_value(value) if sep else None
    for group in COMBINATION_KEYS:
        if group not in out and choices and choices.get(group) is not None:
            out[group] = str(choices[group])
    return out


@dataclass
class JobContext:
    """Where a sweep job sits and who it is."""

    sweep_dir: Path
    job_dir: Path
    overrides: dict[str, object]
    rerun: bool = False
    claim_timeout: float = 600.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return job_key(self.overrides)

    @property
    def ledger(self) -> Path:
        return self.sweep_dir / LEDGER_NAME


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""
    if not HydraConfig.initialized():
        return False
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # pragma: no cover - a partially set Hydra config
        return False


def _as_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def job_context(cfg: DictConfig) -> JobContext:
    """The :class:`JobContext` of the running Hydra job."""
    hc = HydraConfig.get()
    exclude = [k for k in (hc.job.config.override_dirname.exclude_keys or []) if k not in COMBINATION_KEYS]
    choices = OmegaConf.to_container(hc.runtime.choices) if hc.runtime.choices is not None else {}
    overrides = identity_overrides(list(hc.overrides.task), exclude=exclude, choices=choices)
    sweep = cfg.get("sweep") or {}
    return JobContext(
        sweep_dir=Path(str(hc.sweep.dir)).absolute(),
        job_dir=Path(str(hc.runtime.output_dir)),
        overrides=overrides,
        rerun=_as_bool(sweep.get("rerun", False)),
        claim_timeout=float(sweep.get("claim_timeout", 600.0)),
    )
