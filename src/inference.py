"""Inference: expression predictions for raw sequences with a trained :class:`PrixFixeModule`.

Sequences are validated and encoded once with the module's processing (``prepare``), then batches
are built vectorised in evaluation mode (``make_batch(..., train=False)``: autosome's singleton flag
0, strand flag 0 on the forward pass) and predicted under ``torch.inference_mode``. Forward and
reverse-complement predictions are averaged when the processing says so (``processing.rc_average``,
as in validation) unless ``rc_average`` overrides it; both strands go through one forward. ``precision``
picks fp32 or bf16 autocast (:mod:`src.precision`). :func:`resolve_device` is the one place where
``device=auto|cpu|cuda`` is interpreted.

Orientation (the mpra processing's flag channel): the ids decide it, as in training (FASTA
headers, a data set table's id column), unless ``orientation=forward|reverse`` states it for
every read. Plain sequences carry no ids, so for such a model they need ``orientation``: it is
never guessed (:func:`orientation_fields`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.datamodules.encoding import encode_array, find_invalid
from src.datamodules.processing.base import Processing
from src.errors import ConfigError, DataError, LengthPolicyError
from src.lit_modules.prixfixe_module import PrixFixeModule
from src.precision import inference_autocast, inference_dtype

log = logging.getLogger(__name__)


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


ORIENTATIONS = ("forward", "reverse", "both")  # ``orientation``: the flag of every read, or a prediction for each


def check_orientation(processing: Processing, orientation: str | None) -> None:
    """``orientation`` must be unset, or one of :data:`ORIENTATIONS` for a processing with an orientation channel."""
    if orientation is None:
        return
    if orientation not in ORIENTATIONS:
        raise ConfigError(f"orientation must be one of {', '.join(ORIENTATIONS)} or null, got {orientation!r}")
    if processing.orientation_marker is None:
        raise ConfigError(
            f"orientation={orientation}: processing {processing.name!r} has no orientation channel (leave it unset)"
        )


def orientation_fields(
    processing: Processing, n: int, ids: list[str] | None, orientation: str | None, where: str
) -> dict[str, np.ndarray]:
    """The processing's per-read arrays from ids: from ``orientation`` (forward/reverse) when given, else from ``ids``.

    A processing with an orientation channel and reads without ids (plain sequences) needs ``orientation``:
    a ConfigError says so instead of reading every read as forward.
    """
    check_orientation(processing, orientation)
    marker = processing.orientation_marker
    if orientation == "both":
        raise ValueError("orientation=both is two passes: predict with forward and with reverse")
    if orientation is not None:
        return processing.orientation_fields(np.full(n, orientation == "reverse"))
    if marker is not None and ids is None:
        raise ConfigError(
            f"orientation: this model reads each read's orientation from its id ({marker!r} marks reverse) and "
            f"{where} has no ids (plain sequences): set orientation=forward, reverse or both"
        )
    fields = processing.id_fields(ids, n)
    if marker is not None and ids is not None:
        n_reverse = sum(marker in i for i in ids)
        log.info("%s: orientation from the ids: %d forward, %d reverse (%r)", where, n - n_reverse, n_reverse, marker)
    return fields


def prepare_sequences(
    processing: Processing,
    sequences: Sequence[str],
    path: str | Path | None = None,
    lines: np.ndarray | None = None,
    ids: list[str] | None = None,
    orientation: str | None = None,
) -> dict[str, np.ndarray]:
    """Validate and encode sequences once with ``processing.prepare``; problems -> DataError.

    ``path`` / ``lines`` (1-based line per sequence) only make the error messages cite the file;
    ``ids`` (FASTA headers, a table's id column) feed processings that read flags from them (mpra's
    reverse orientation) unless ``orientation`` (forward/reverse) sets the flag of every read.
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
        decision = processing.length_policy(lengths)
    except LengthPolicyError as err:
        raise DataError(err.problem, where, line_of(err.row)) from None
    if not decision.keep.all():
        row = int(np.flatnonzero(~decision.keep)[0])
        length = int(lengths[row])
        too_long = length > processing.length_range()[1]
        problem = processing.long_problem(length) if too_long else processing.short_problem(length)
        raise DataError(
            f"{problem}: the model's processing drops such reads in training (processing.on_long/on_short=drop), "
            "so it has no prediction for it",
            where,
            line_of(row),
        )
    processing.report_lengths(decision, where)
    flags = orientation_fields(processing, len(sequences), ids, orientation, where)
    return {**processing.prepare(codes, lengths), **flags}


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="seq", desc="predict", disable=not enabled, dynamic_ncols=True, leave=False)


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
    ids: list[str] | None = None,
    orientation: str | None = None,
    precision: str = "32",
) -> np.ndarray:
    """Expression-scale predictions ``(N, T)`` (float32) for ``sequences``, in their order.

    ``rc_average``: None = the processing's default, True/False force it (True without an RC
    encoding -> ConfigError). ``device``: None keeps the module where it is, ``"auto"`` picks
    CUDA when available. The module's device and train/eval mode are restored afterwards.
    ``path`` / ``lines`` let validation errors cite the source file and line. ``precision``:
    ``"32"`` (exact fp32), ``"bf16"`` (bf16 autocast; the objective maps logits in fp32) or
    ``"auto"`` (bf16 where the device computes it natively; predict.py's and evaluate.py's default).
    ``ids`` / ``orientation``: the orientation flag, see :func:`orientation_fields`.
    """
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    processing = module.processing
    average = resolve_rc_average(processing, rc_average)
    prepared = prepare_sequences(processing, sequences, path, lines, ids, orientation)
    fields = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in prepared.items()}
    n = len(sequences)
    n_targets = int(module.hparams.get("n_targets", 1))

    first_param = next(module.parameters(), None)
    home = first_param.device if first_param is not None else torch.device("cpu")
    target = resolve_device(device) or home
    dtype = inference_dtype(precision, target)
    was_training = module.training
    module.to(target)
    module.eval()
    out = np.empty((n, n_targets), dtype=np.float32)
    try:
        with torch.inference_mode(), inference_autocast(dtype, target), _progress(n, progress) as bar:
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
