"""The prediction task behind ``predict.py``: a checkpoint + a sequence file -> a TSV of predictions.

The checkpoint alone rebuilds the model, its processing and its objective
(:class:`PrixFixeModule` keeps its hyperparameters as plain dicts). Sequences are
encoded once with the checkpoint's processing (``prepare``), then batches are built
vectorised in evaluation mode (``make_batch(..., train=False)``: autosome's singleton
flag 0, strand flag 0 on the forward pass) and predicted under ``torch.inference_mode``.
Forward and reverse-complement predictions are averaged when the processing says so
(``processing.rc_average``, as in validation) unless ``rc_average`` overrides it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from src.datamodules.encoding import encode_array, find_invalid
from src.datamodules.errors import ConfigError, DataError
from src.datamodules.processing.base import LengthPolicyError, Processing
from src.datamodules.readers import read_sequences
from src.lit_modules.prixfixe_module import PrixFixeModule
from src.utils.io import atomic_write_text

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- helpers


def resolve_device(device: str | torch.device | None) -> torch.device | None:
    """``"auto"`` -> CUDA when available, else CPU; ``None`` -> None (keep the module where it is)."""
    if device is None:
        return None
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {device!r} (use auto, cpu or cuda)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA GPU is available (use device=cpu or device=auto)")
    return resolved


def load_module(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> PrixFixeModule:
    """Rebuild a :class:`PrixFixeModule` from a checkpoint alone (eval mode); a bad path -> ConfigError."""
    path = Path(ckpt_path)
    if not path.exists():
        raise ConfigError(f"ckpt_path: checkpoint {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"ckpt_path: {path} is a folder, expected a .ckpt file")
    try:
        module = PrixFixeModule.load_from_checkpoint(str(path), map_location=map_location)
    except (ConfigError, DataError):
        raise
    except Exception as err:  # unpickling / missing keys / not a checkpoint: one clear line
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"ckpt_path: cannot load {path} as a prixfixe checkpoint ({first})") from err
    module.eval()
    return module


def has_rc_encoding(processing: Processing) -> bool:
    """Whether the processing implements ``reverse_complement`` (the base class does not)."""
    return type(processing).reverse_complement is not Processing.reverse_complement


def resolve_rc_average(processing: Processing, rc_average: bool | None) -> bool:
    """``None`` -> the processing's own default; ``True`` without an RC encoding -> ConfigError."""
    if rc_average is None:
        return bool(processing.rc_average) and has_rc_encoding(processing)
    if rc_average and not has_rc_encoding(processing):
        raise ConfigError(
            f"rc_average=true: processing {processing.name!r} has no reverse-complement encoding (use rc_average=false)"
        )
    return bool(rc_average)


def prepare_sequences(
    processing: Processing,
    sequences: Sequence[str],
    path: str | Path | None = None,
    lines: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Validate and encode sequences once with ``processing.prepare``; problems -> DataError.

    ``path`` / ``lines`` (1-based line per sequence) only make the error messages cite the file.
    """
    where = str(path) if path is not None else "<sequences>"

    def line_of(row: int) -> int:
        return int(lines[row]) if lines is not None else row + 1

    if not sequences:
        raise DataError("no sequences to predict", where)
    for row, seq in enumerate(sequences):
        if not seq:
            raise DataError("empty sequence", where, line_of(row))
    codes, lengths = encode_array(list(sequences))
    bad = find_invalid(codes)
    if bad is not None:
        row, col = bad
        raise DataError(
            f"letter {sequences[row][col]!r} at position {col + 1} is not one of ACGTN", where, line_of(row)
        )
    try:
        return processing.prepare(codes, lengths)
    except LengthPolicyError as err:
        raise DataError(f"{err.problem} (processing={processing.name})", where, line_of(err.row)) from None


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="seq", desc="predict", disable=not enabled, dynamic_ncols=True, leave=False)


# ----------------------------------------------------------------------------- prediction


def predict_sequences(
    module: PrixFixeModule,
    sequences: Sequence[str],
    batch_size: int = 512,
    rc_average: bool | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    path: str | Path | None = None,
    lines: np.ndarray | None = None,
) -> np.ndarray:
    """Expression-scale predictions ``(N, T)`` (float32) for ``sequences``, in their order.

    ``rc_average``: None = the processing's default, True/False force it (True without an RC
    encoding -> ConfigError). ``device``: None keeps the module where it is, ``"auto"`` picks
    CUDA when available. The module's device and train/eval mode are restored afterwards.
    ``path`` / ``lines`` let validation errors cite the source file and line.
    """
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    processing = module.processing
    average = resolve_rc_average(processing, rc_average)
    prepared = prepare_sequences(processing, sequences, path, lines)
    fields = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in prepared.items()}
    n = len(sequences)
    n_targets = int(module.hparams.get("n_targets", 1))

    first_param = next(module.parameters(), None)
    home = first_param.device if first_param is not None else torch.device("cpu")
    target = resolve_device(device) or home
    was_training = module.training
    module.to(target)
    module.eval()
    out = np.empty((n, n_targets), dtype=np.float32)
    try:
        with torch.inference_mode(), _progress(n, progress) as bar:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                # vectorised batch: slice every prepared field, move it, build the encoding on the device
                part = {k: v[start:stop].to(target, non_blocking=True) for k, v in fields.items()}
                y = torch.zeros(stop - start, n_targets, device=target)
                view = torch.zeros(stop - start, dtype=torch.long, device=target)  # forward strand
                batch = processing.make_batch(part, y, view, False)
                pred = module.predict_expression(batch["x"].float(), rc_average=average)
                out[start:stop] = pred.float().reshape(stop - start, n_targets).cpu().numpy()
                bar.update(stop - start)
    finally:
        module.to(home)
        module.train(was_training)
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if bad.size:
        log.warning("%d prediction(s) are not finite (first: sequence %d)", bad.size, int(bad[0]))
    return out


# ----------------------------------------------------------------------------- output


def prediction_columns(module: PrixFixeModule, n_targets: int) -> list[str]:
    """``["prediction"]`` for one target, ``prediction_<name>`` per target otherwise."""
    if n_targets == 1:
        return ["prediction"]
    names = module.hparams.get("target_names") or [f"t{i}" for i in range(n_targets)]
    return [f"prediction_{name}" for name in list(names)[:n_targets]]


def format_predictions(sequences: Sequence[str], predictions: np.ndarray, columns: Sequence[str]) -> str:
    """TSV text: header ``sequence<TAB><columns>``, one row per sequence (values exact: float32 as shortest repr)."""
    pred = np.asarray(predictions, dtype=np.float32).reshape(len(sequences), -1)
    rows = ["\t".join(["sequence", *columns])]
    for seq, values in zip(sequences, pred.tolist()):
        rows.append("\t".join([seq, *(repr(v) if math.isfinite(v) else "nan" for v in values)]))
    return "\n".join(rows) + "\n"


def write_predictions(
    path: str | Path, sequences: Sequence[str], predictions: np.ndarray, columns: Sequence[str]
) -> Path:
    """Write :func:`format_predictions` atomically."""
    return atomic_write_text(path, format_predictions(sequences, predictions, columns))


# ----------------------------------------------------------------------------- task


def predict(cfg: DictConfig) -> dict[str, Any]:
    """``predict.py``: load the checkpoint, read + predict the input, write the TSV; returns a summary."""
    module = load_module(cfg.ckpt_path)
    records = read_sequences(cfg.input)
    output = Path(cfg.output)
    if output.is_dir():
        raise ConfigError(f"output: {output} is a folder, expected a file path")
    rc = cfg.get("rc_average")
    preds = predict_sequences(
        module,
        records.sequences,
        batch_size=int(cfg.get("batch_size", 512)),
        rc_average=None if rc is None else bool(rc),
        device=cfg.get("device", "auto"),
        progress=bool(cfg.get("progress", True)),
        path=records.path,
        lines=records.lines,
    )
    columns = prediction_columns(module, preds.shape[1])
    write_predictions(output, records.sequences, preds, columns)
    print(f"wrote {len(records)} predictions ({', '.join(columns)}) to {output}")
    return {"n": len(records), "output": str(output), "columns": columns}
