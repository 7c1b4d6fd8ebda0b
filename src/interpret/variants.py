"""Variant effects: a pairs file (``ref``/``alt``, or ``seq``/``pos``/``alt`` base) -> predicted ``alt - ref``.

Both sequences of every pair are predicted through the read wrapper
(:class:`src.interpret.read_model.ReadModel`, the path of ISM and the attributions: the run's processing
inside the forward pass; both strands averaged when the processing trains with reverse complements), each
distinct sequence once, and the effect is :func:`src.interpret.pairs.pair_differences`. So the effect of a
single-base variant is the ISM score of that base. The wrapper rebuilds the processing's encoding
exactly, so the effects also equal the difference of two ``predict.py`` predictions (tested). With a
``measured`` column (the measured ``alt - ref``) the Pearson and Spearman correlations are those of the
DREAM test suite's scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.datamodules.readers import _open_lines, parse_float
from src.errors import ConfigError, DataError
from src.interpret.attribution import predict_reads
from src.interpret.pairs import pair_differences
from src.interpret.read_model import ReadModel, prepare_reads
from src.lit_modules.prixfixe_module import PrixFixeModule

BASES = set("ACGTN")


@dataclass
class Pairs:
    """Reference and alternative sequences, optional measured effects, and the file's columns per row."""

    ref: list[str]
    alt: list[str]
    measured: np.ndarray | None  # float64 (n,)
    lines: np.ndarray  # 1-based line per pair
    header: list[str]
    rows: list[list[str]]
    path: str


def read_pairs(path: str | Path) -> Pairs:
    """A tab-separated pairs file with a header: ``ref``+``alt``, or ``seq``+``pos`` (0-based)+``alt`` (a base)."""
    rows_iter = _open_lines(path)
    try:
        _, header_line = next(rows_iter)
    except StopIteration:  # pragma: no cover - _open_lines rejects empty files
        raise DataError("file is empty", path) from None
    header = [h.strip() for h in header_line.rstrip("\r").split("\t")]
    if "alt" not in header or not ({"ref"} <= set(header) or {"seq", "pos"} <= set(header)):
        problem = f"the header needs columns ref and alt, or seq, pos and alt (has: {', '.join(header)})"
        raise DataError(problem, path, 1)
    by_seq = "ref" not in header
    col = {name: header.index(name) for name in header}
    refs, alts, measured, lines, rows = [], [], [], [], []
    for number, line in rows_iter:
        if not line.strip():
            continue
        parts = [p.strip() for p in line.rstrip("\r").split("\t")]
        if len(parts) != len(header):
            raise DataError(f"expected {len(header)} columns like the header, found {len(parts)}", path, number)
        alt = parts[col["alt"]]
        if by_seq:
            ref = parts[col["seq"]]
            try:
                pos = int(parts[col["pos"]])
            except ValueError:
                raise DataError(f"pos {parts[col['pos']]!r} is not an integer", path, number) from None
            if not 0 <= pos < len(ref):
                raise DataError(f"pos {pos} is outside the {len(ref)}-nt seq (0-based)", path, number)
            if len(alt) != 1 or alt.upper() not in BASES:
                raise DataError(f"alt {alt!r} is not one base (A, C, G, T or N)", path, number)
            alt = ref[:pos] + alt + ref[pos + 1 :]
        else:
            ref = parts[col["ref"]]
        for name, seq in (("ref" if not by_seq else "seq", ref), ("alt", alt)):
            bad = sorted(set(seq.upper()) - BASES)
            if not seq or bad:
                problem = f"{name} has letters outside ACGTN ({''.join(bad)})" if seq else f"empty {name}"
                raise DataError(problem, path, number)
        refs.append(ref)
        alts.append(alt)
        lines.append(number)
        rows.append(parts)
        if "measured" in col:
            measured.append(parse_float(parts[col["measured"]], path, number, "measured"))
    if not refs:
        raise DataError("file holds a header but no pairs", path)
    return Pairs(
        refs, alts, np.asarray(measured) if "measured" in col else None, np.asarray(lines), header, rows, str(path)
    )


def variant_effects(
    module: PrixFixeModule,
    ref: Sequence[str],
    alt: Sequence[str],
    path: str | Path | None = None,
    *,
    batch_size: int = 512,
    rc_average: bool | None = None,
    device: str | None = "cpu",
    progress: bool = False,
    orientation: str | None = None,
    precision: str = "32",
) -> np.ndarray:
    """Predicted ``alt - ref`` ``(n, T)``: every distinct sequence predicted once through the read wrapper.

    ``rc_average``, ``orientation``, ``precision`` and ``device`` mean what they mean for ``predict.py``.
    """
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    unique: dict[str, int] = {}
    for seq in (*ref, *alt):
        unique.setdefault(seq, len(unique))
    reads = prepare_reads(module, list(unique), path, orientation=orientation)
    model = ReadModel(module, reads.layouts, rc_average=rc_average, precision=precision, device=device)
    preds = predict_reads(model, reads, int(batch_size), progress=progress)
    return pair_differences(preds, [unique[s] for s in alt], [unique[s] for s in ref])


def effect_correlations(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Pearson r and Spearman rho of predicted vs measured effects (the test suite's own functions)."""
    from src.evaluation.dream_suite import pearson, spearman

    return {"pearson": pearson(predicted, measured), "spearman": spearman(predicted, measured), "n": int(len(measured))}
