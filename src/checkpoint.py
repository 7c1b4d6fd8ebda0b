"""Checkpoints: the existence check, ``ckpt_path`` resolution, loading a model, and ``init_from``.

* :func:`checkpoint_file`: the one check (and wording) for a checkpoint path given in a config key.
* :func:`resolve_ckpt_path`: ``ckpt_path=last`` / ``resume=true`` -> this run folder's ``last.ckpt``.
* :func:`load_module`: a :class:`PrixFixeModule` rebuilt from a checkpoint alone (its hyperparameters
  are plain dicts), for prediction and evaluation.
* :func:`init_from_checkpoint`: start a new model from a checkpoint's weights (fine-tuning,
  transfer between combinations).
* :func:`read_checkpoint`: the integrity check every entry point runs before using a checkpoint:
  it must load with ``torch.load(weights_only=True)`` (a truncated file does not), its weights must
  be finite, and its tensors must match the SHA-256 digest :class:`TensorDigest` stored when it was
  saved (bytes changed inside the file load without complaint, but not with the same digest).
* :func:`check_resume`: ``ckpt_path`` / ``resume`` must point at a checkpoint of the same
  combination and processing as the run; otherwise one line names both, before anything is written.

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

Transfer mode (:func:`transfer_from_checkpoint`, ``init_from_partial=true``; a yeast model started
on lentiMPRA / DeepSTARR) goes tensor by tensor instead of block by block:

* a tensor whose name and shape match is copied;
* a first-block tensor that differs only in its input channels (dimension 1: the processing's
  channel count, 6 for autosome's yeast input, 5 for mpra) gets the overlapping channels copied
  (A, C, G, T and the strand flag, which becomes the orientation flag) and keeps its fresh
  initialisation for the rest;
* the final block is copied only when all its tensors match; otherwise (a new number of targets,
  another head) it is rebuilt fresh as a whole;
* any other mismatching tensor (e.g. DREAM-Attn's learned positional embedding, whose length
  follows the reads) keeps its fresh initialisation;
* the objective's statistics are never copied (they are refit on the new training split).

Every re-initialised tensor or block is named in a log line; nothing copied at all is a ConfigError.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from src.errors import ConfigError, DataError, first_line
from src.lit_modules.prixfixe_module import PrixFixeModule
from src.utils.naming import combination_of
from src.utils.run_dir import latest_run, remove_unused_run_dir, run_dir_chosen

log = logging.getLogger(__name__)

DIGEST_KEY = "prixfixe_tensor_digest"  # {"algorithm": "sha256", "value": hex} in every checkpoint train.py writes
RESUME_GROUPS = ("first", "core", "final", "processing")


# ----------------------------------------------------------------------------- integrity


def _tensors(obj: object, path: str = "") -> list[tuple[str, Tensor]]:
    """Every tensor inside nested dicts and lists, with its key path."""
    if isinstance(obj, Tensor):
        return [(path, obj)]
    if isinstance(obj, Mapping):
        return [t for k in obj if k != DIGEST_KEY for t in _tensors(obj[k], f"{path}/{k}")]
    if isinstance(obj, (list, tuple)):
        return [t for i, v in enumerate(obj) for t in _tensors(v, f"{path}/{i}")]
    return []


def tensor_digest(checkpoint: Mapping) -> str:
    """SHA-256 over every tensor of a checkpoint (weights, optimizer state, ...): key path, dtype, shape, bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(_tensors(checkpoint), key=lambda item: item[0]):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


class TensorDigest(L.Callback):
    """Stores :func:`tensor_digest` in every checkpoint Lightning saves (its tensors are all in place by then)."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[DIGEST_KEY] = {"algorithm": "sha256", "value": tensor_digest(checkpoint)}


# torch.save writes a zip archive (PyTorch >= 1.6) or, in the legacy format, a pickle (protocol 2+: byte 0x80)
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80


def _header_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a torch.save file, judged by its first bytes (None when the header fits)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        return "the file is empty (0 bytes)"
    if head == _ZIP_MAGIC or head[0] == _PICKLE_PROTO:
        return None
    return "not a PyTorch checkpoint (zip or pickle header not found)"


def _in_words(err: BaseException) -> str:
    """The first line of a load error, or words around it when it is none (a ``KeyError`` reads ``101``)."""
    line, kind = first_line(err), type(err).__name__
    if line != kind and any(ch.isalpha() for ch in line):
        return line
    return f"unreadable pickle data ({kind}{f' {line}' if line != kind else ''})"


def read_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict:
    """Load a checkpoint (``weights_only=True``) and check it; any problem -> one-line :class:`ConfigError`.

    Returns the checkpoint dict, with ``"state_dict"`` (a bare state dict is wrapped). A checkpoint
    without a digest (written before digests existed, or by another tool) is checked for loading
    and finite weights only.
    """
    p = checkpoint_file(path, key)
    not_torch = _header_problem(p)
    if not_torch:
        raise ConfigError(f"{key}: {p} is not a readable checkpoint: {not_torch}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a checkpoint, or pickled objects weights_only refuses
        if "Unsupported global" in str(err):  # a whole file that holds more than tensors and plain data
            raise ConfigError(
                f"{key}: cannot load {p} with torch.load(weights_only=True): it holds pickled objects besides "
                "tensors (only plain checkpoints are loaded; re-save it from a trusted source)"
            ) from None
        raise ConfigError(
            f"{key}: {p} is not a readable checkpoint (truncated or corrupt?): {_in_words(err)}"
        ) from None
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{key}: {p} holds no state_dict of tensors")
    ckpt = dict(obj) if "state_dict" in obj else {"state_dict": dict(obj)}
    state = ckpt["state_dict"]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"{key}: {p} holds no state_dict of tensors")
    for name, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise ConfigError(f"{key}: {p} holds non-finite weights ({name}: {bad} NaN/inf of {tensor.numel()})")
    stored = ckpt.get(DIGEST_KEY)
    if isinstance(stored, Mapping) and stored.get("value") != tensor_digest(obj):
        raise ConfigError(f"{key}: {p} is corrupt: its tensors no longer match the digest stored when it was saved")
    return ckpt


def _first_difference(saved: object, wanted: object, where: str) -> str | None:
    """The first key path where two plain configs differ (keys missing on one side are not differences)."""
    if isinstance(saved, Mapping) and isinstance(wanted, Mapping):
        for k in wanted:
            if k in saved:
                found = _first_difference(saved[k], wanted[k], f"{where}.{k}")
                if found:
                    return found
        return None
    if saved != wanted:
        return f"{where} is {saved!r} in the checkpoint, {wanted!r} here"
    return None


def _label(hp: Mapping) -> str:
    processing = (hp.get("processing") or {}).get("name", "?")
    return f"{combination_of(hp)} with processing {processing}"


def check_resume(module: PrixFixeModule, ckpt_path: str | Path, key: str = "ckpt_path") -> None:
    """A resume checkpoint must be intact and of this run's combination and processing (else ConfigError)."""
    ckpt = read_checkpoint(ckpt_path, key)
    saved = ckpt.get("hyper_parameters")
    if not isinstance(saved, Mapping) or any(not isinstance(saved.get(g), Mapping) for g in RESUME_GROUPS):
        raise ConfigError(f"{key}: {ckpt_path} is not a prixfixe training checkpoint (no block hyperparameters)")
    wanted = module.hparams
    for group in RESUME_GROUPS:
        found = _first_difference(saved[group], wanted[group], group)
        if found:
            raise ConfigError(
                f"{key}: {ckpt_path} is a checkpoint of {_label(saved)}, this run is {_label(wanted)} "
                f"({found}); pass the run's own blocks, or init_from= to start anew from its weights"
            )


def checkpoint_file(path: str | Path, key: str) -> Path:
    """``path`` as an existing checkpoint file; otherwise :class:`ConfigError` naming config ``key``."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{key}: checkpoint {p} does not exist")
    if p.is_dir():
        raise ConfigError(f"{key}: {p} is a folder, expected a checkpoint file")
    return p


def resolve_ckpt_path(cfg: DictConfig, run_dir: Path) -> str | None:
    """``ckpt_path=last`` / ``resume=true`` -> this run folder's last.ckpt; a path must exist.

    Without ``hydra.run.dir`` the run folder is a new one, which never holds a ``last.ckpt``:
    that is an error which names the folder to pass (the newest run of this combination).
    """
    ckpt = cfg.get("ckpt_path")
    if cfg.get("resume") and not ckpt:
        ckpt = "last"
    if not ckpt:
        return None
    if ckpt == "last":
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            return str(last)
        if not run_dir_chosen():
            remove_unused_run_dir(run_dir)
            previous = latest_run(run_dir, combination_of(cfg))
            hint = f"hydra.run.dir={previous}" if previous else "hydra.run.dir=<the run folder to resume>"
            raise ConfigError(f"resume=true resumes the run in hydra.run.dir, which was not given: add {hint}")
        log.warning("resume requested but %s does not exist yet: training from scratch", last)
        return None
    return str(checkpoint_file(ckpt, "ckpt_path"))


def load_module(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> PrixFixeModule:
    """Rebuild a :class:`PrixFixeModule` from a checkpoint alone (eval mode); a bad path -> ConfigError."""
    path = checkpoint_file(ckpt_path, "ckpt_path")
    read_checkpoint(path, "ckpt_path")  # truncated, corrupt or non-finite: one line before anything is predicted
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
    return dict(read_checkpoint(path, "init_from")["state_dict"])


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


# ----------------------------------------------------------------------------- transfer mode


def _dims(t: Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


@dataclass
class TransferReport:
    """What :func:`transfer_from_checkpoint` did."""

    path: str
    copied: list[str] = field(default_factory=list)  # tensors copied whole
    channels: dict[str, str] = field(default_factory=dict)  # tensor -> which input channels were copied
    fresh: dict[str, str] = field(default_factory=dict)  # tensor -> why it keeps its fresh initialisation
    n_model: int = 0

    def fresh_blocks(self) -> set[str]:
        """Blocks of which nothing was copied."""
        touched = {block_of(n) for n in [*self.copied, *self.channels]}
        return {block_of(n) for n in self.fresh} - touched

    def describe(self) -> str:
        text = (
            f"init_from (transfer): {len(self.copied)} of {self.n_model} tensors copied from {self.path}, "
            f"{len(self.channels)} with their overlapping input channels, {len(self.fresh)} re-initialised"
        )
        return text


def transfer_from_checkpoint(module: nn.Module, path: str | Path) -> TransferReport:
    """Copy what carries over from checkpoint ``path`` into ``module`` (see the module docstring)."""
    source = load_state_dict(path)
    target = {n: t for n, t in module.state_dict().items() if not n.startswith("objective.")}
    report = TransferReport(str(path), n_model=len(target))
    state: dict[str, Tensor] = {}
    for name, tensor in target.items():
        src = source.get(name)
        if src is None:
            report.fresh[name] = f"{name} {_dims(tensor)} is not in the checkpoint"
        elif src.shape == tensor.shape:
            state[name] = src
            report.copied.append(name)
        elif (
            block_of(name) == "net.first"
            and src.dim() == tensor.dim() >= 2
            and src.shape[0] == tensor.shape[0]
            and src.shape[2:] == tensor.shape[2:]
        ):
            keep = min(int(src.shape[1]), int(tensor.shape[1]))
            value = tensor.clone()
            value[:, :keep] = src[:, :keep].to(value.dtype)
            state[name] = value
            report.channels[name] = f"input channels 0-{keep - 1} of {src.shape[1]} copied into {tensor.shape[1]}"
        else:
            report.fresh[name] = f"{name} has shape {_dims(src)} in the checkpoint but {_dims(tensor)} here"
    final_problems = [why for n, why in report.fresh.items() if block_of(n) == "net.final"]
    if final_problems:
        for name in [n for n in report.copied if block_of(n) == "net.final"]:
            report.copied.remove(name)
            state.pop(name)
            report.fresh[name] = "rebuilt with its block"
        log.warning("init_from: final block net.final re-initialised (rebuilt fresh): %s", final_problems[0])
    if not state:
        first = next(iter(report.fresh.values()), "the checkpoint is empty")
        raise ConfigError(f"init_from: nothing of {path} carries over to this model ({first})")
    module.load_state_dict(state, strict=False)
    for name, how in report.channels.items():
        log.info("init_from: %s: %s", name, how)
    for name, why in report.fresh.items():
        if block_of(name) != "net.final":
            log.warning("init_from: %s re-initialised: %s", name, why)
    log.info(report.describe())
    return report
