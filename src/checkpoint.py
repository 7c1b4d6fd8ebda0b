"""Checkpoints: the existence check, ``ckpt_path`` resolution, loading a model, and ``init_from``.

* :func:`checkpoint_file`: the one check (and wording) for a checkpoint path given in a config key.
* :func:`resolve_ckpt_path`: ``ckpt_path=last`` / ``resume=true`` -> this run folder's ``last.ckpt``.
* :func:`load_module`: a :class:`PrixFixeModule` rebuilt from a checkpoint alone (its hyperparameters
  are plain dicts), for prediction and evaluation.
* :func:`init_from_checkpoint`: start a new model from a checkpoint's weights (fine-tuning,
  transfer between combinations).

Unlike ``ckpt_path`` (resume the *same* run: weights, optimizer, schedule, epoch), ``init_from`` only
copies tensors into a freshly composed model, whose combination, processing or data may differ:

* the checkpoint is read with ``torch.load(weights_only=True)`` (a Lightning ``.ckpt`` with a
  ``state_dict`` or a bare state dict of tensors); nothing pickled is executed;
* every tensor whose name and shape match is copied; names are grouped into blocks
  (``net.first``, ``net.core``, ``net.final``, and top-level modules such as ``objective``);
* ``strict=True`` (``init_from_strict``, the default): any difference raises :class:`ConfigError`
  naming the first mismatching tensor and both shapes, with how many tensors match, and loads
  nothing;
* ``strict=False``: a block is loaded only when all its tensors match (a half-loaded block is
  no starting point); the other blocks keep their fresh initialisation and are logged as skipped.
  Loading nothing at all is still an error.

The objective's target statistics are refit on the new training data afterwards (see
:func:`src.train_task.train`), so only the network's weights really carry over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from src.errors import ConfigError, DataError, first_line
from src.lit_modules.prixfixe_module import PrixFixeModule

log = logging.getLogger(__name__)


def checkpoint_file(path: str | Path, key: str) -> Path:
    """``path`` as an existing checkpoint file; otherwise :class:`ConfigError` naming config ``key``."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{key}: checkpoint {p} does not exist")
    if p.is_dir():
        raise ConfigError(f"{key}: {p} is a folder, expected a checkpoint file")
    return p


def resolve_ckpt_path(cfg: DictConfig, run_dir: Path) -> str | None:
    """``ckpt_path=last`` / ``resume=true`` -> this run folder's last.ckpt; a path must exist."""
    ckpt = cfg.get("ckpt_path")
    if cfg.get("resume") and not ckpt:
        ckpt = "last"
    if not ckpt:
        return None
    if ckpt == "last":
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            return str(last)
        log.warning("resume requested but %s does not exist yet: training from scratch", last)
        return None
    return str(checkpoint_file(ckpt, "ckpt_path"))


def load_module(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> PrixFixeModule:
    """Rebuild a :class:`PrixFixeModule` from a checkpoint alone (eval mode); a bad path -> ConfigError."""
    path = checkpoint_file(ckpt_path, "ckpt_path")
    try:
        module = PrixFixeModule.load_from_checkpoint(str(path), map_location=map_location)
    except (ConfigError, DataError):
        raise
    except Exception as err:  # unpickling / missing keys / not a checkpoint: one clear line
        raise ConfigError(f"ckpt_path: cannot load {path} as a prixfixe checkpoint ({first_line(err)})") from err
    module.eval()
    return module


@dataclass
class InitReport:
    """What :func:`init_from_checkpoint` did."""

    path: str
    loaded: list[str] = field(default_factory=list)  # tensor names copied
    skipped_blocks: dict[str, str] = field(default_factory=dict)  # block -> first reason
    n_model: int = 0  # tensors in the model's state dict

    def describe(self) -> str:
        text = f"init_from: loaded {len(self.loaded)} of {self.n_model} tensors from {self.path}"
        if self.skipped_blocks:
            skipped = "; ".join(f"{block} ({why})" for block, why in self.skipped_blocks.items())
            text += f"; skipped blocks: {skipped}"
        return text


def _shape(tensor: Tensor) -> str:
    return str(tuple(int(d) for d in tensor.shape))


def block_of(name: str) -> str:
    """``net.core.stages.0.weight`` -> ``net.core``; ``objective.mean`` -> ``objective``."""
    parts = name.split(".")
    if parts[0] == "net" and len(parts) > 2:
        return ".".join(parts[:2])
    return parts[0]


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a checkpoint (``weights_only=True``); a missing or unreadable file -> ConfigError."""
    p = checkpoint_file(path, "init_from")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # not a checkpoint, truncated file, or pickled objects weights_only refuses
        raise ConfigError(f"init_from: cannot load {p} with torch.load(weights_only=True): {first_line(err)}") from None
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"init_from: {p} holds no state_dict of tensors")
    return dict(state)


def compare(model: Mapping[str, Tensor], checkpoint: Mapping[str, Tensor]) -> tuple[list[str], list[tuple[str, str]]]:
    """Names that match in name and shape (model order), and ``(name, problem)`` for every difference."""
    matching: list[str] = []
    problems: list[tuple[str, str]] = []
    for name, tensor in model.items():
        if name not in checkpoint:
            problems.append((name, f"{name} {_shape(tensor)} is in the model but not in the checkpoint"))
        elif tuple(checkpoint[name].shape) != tuple(tensor.shape):
            problems.append(
                (
                    name,
                    f"{name} has shape {_shape(checkpoint[name])} in the checkpoint but {_shape(tensor)} in the model",
                )
            )
        else:
            matching.append(name)
    for name, tensor in checkpoint.items():
        if name not in model:
            problems.append((name, f"{name} {_shape(tensor)} is in the checkpoint but not in the model"))
    return matching, problems


def init_from_checkpoint(module: nn.Module, path: str | Path, strict: bool = True) -> InitReport:
    """Copy the matching tensors of checkpoint ``path`` into ``module`` (see the module docstring)."""
    source = load_state_dict(path)
    target = module.state_dict()
    matching, problems = compare(target, source)
    report = InitReport(str(path), n_model=len(target))
    if problems and strict:
        raise ConfigError(
            f"init_from: {problems[0][1]}; {len(matching)} of {len(target)} model tensors match, 0 loaded "
            f"({len(problems)} difference(s); init_from_strict=false loads only the blocks that match)"
        )
    for name, why in problems:
        report.skipped_blocks.setdefault(block_of(name), why)
    report.loaded = [n for n in matching if block_of(n) not in report.skipped_blocks]
    if not report.loaded:
        first = problems[0][1] if problems else "the checkpoint is empty"
        raise ConfigError(f"init_from: no block of {path} matches the model, 0 tensors loaded ({first})")
    result = module.load_state_dict({n: source[n] for n in report.loaded}, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    for block, why in report.skipped_blocks.items():
        if block in {block_of(n) for n in target}:
            log.warning("init_from: block %s keeps its fresh initialisation: %s", block, why)
    log.info(report.describe())
    return report
