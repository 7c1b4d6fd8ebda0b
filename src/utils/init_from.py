"""``init_from``: start a new model from a checkpoint's weights (fine-tuning, transfer between combinations).

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
from torch import Tensor, nn

from src.datamodules.errors import ConfigError

log = logging.getLogger(__name__)


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
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"init_from: checkpoint {p} does not exist")
    if p.is_dir():
        raise ConfigError(f"init_from: {p} is a folder, expected a checkpoint file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # not a checkpoint, truncated file, or pickled objects weights_only refuses
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"init_from: cannot load {p} with torch.load(weights_only=True): {first}") from None
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
