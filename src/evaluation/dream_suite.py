"""DREAM 2022 random-promoter challenge test suite: read the test folder and score predictions.

The test folder holds ``filtered_test_data_with_MAUDE_expression.txt`` (``sequence<TAB>expression``,
no header, 0-based line number = position ``pos``) and one CSV per subset. Single subsets list
positions (``pos``); pair subsets list ``(alt_pos, ref_pos)`` pairs and are scored on the
``alt - ref`` differences. Scores are the challenge's weighted averages: Pearson score =
``sum(w * r**2) / sum(w)``, Spearman score = ``sum(w * rho) / sum(w)``. Subsets whose files are
absent are reported as missing; a subset with fewer than :data:`MIN_ITEMS` sequences or pairs, or
whose predictions or measured values are constant, has no meaningful correlation (two points always
give r = ±1): it is reported as not scored, with a warning and the reason. Both scores are weighted
over the scored subsets only (``weight_sum``, stated in the report) and the result is flagged ``partial``.
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from src.datamodules.readers import open_text, parse_float
from src.errors import DataError
from src.interpret.pairs import pair_differences

log = logging.getLogger(__name__)

SEQUENCE_FILE = "filtered_test_data_with_MAUDE_expression.txt"
MIN_ITEMS = 3  # fewest sequences (or pairs) a subset needs to be scored: two points always correlate perfectly

SUBSET_WEIGHTS: dict[str, float] = {
    "all": 1.0,
    "high": 0.3,
    "low": 0.3,
    "yeast": 0.3,
    "random": 0.3,
    "challenging": 0.5,
    "SNVs": 1.25,
    "motif_perturbation": 0.3,
    "motif_tiling": 0.4,
}

#: Subset key -> CSV file name (``"all"`` is the whole sequence file, :data:`SEQUENCE_FILE`).
SUBSET_FILES: dict[str, str] = {
    "high": "high_exp_seqs.csv",
    "low": "low_exp_seqs.csv",
    "yeast": "yeast_seqs.csv",
    "random": "all_random_seqs.csv",
    "challenging": "challenging_seqs.csv",
    "SNVs": "all_SNVs_seqs.csv",
    "motif_perturbation": "motif_perturbation_seqs.csv",
    "motif_tiling": "motif_tiling_seqs.csv",
}

SINGLE_SUBSETS: tuple[str, ...] = ("high", "low", "yeast", "random", "challenging")
PAIR_SUBSETS: tuple[str, ...] = ("SNVs", "motif_perturbation", "motif_tiling")


@dataclass
class TestSuite:
    """A loaded DREAM test folder (positions index ``sequences`` / ``measured``)."""

    __test__ = False  # not a pytest test class despite the name

    folder: Path
    sequences: list[str]
    measured: np.ndarray
    singles: dict[str, np.ndarray]
    pairs: dict[str, np.ndarray]
    missing: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        """Number of sequences in the sequence file."""
        return len(self.sequences)


# ----------------------------------------------------------------------------- correlations


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two 1-D arrays; NaN when ``n < 2`` or either array is constant."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pearson: arrays differ in length ({x.size} vs {y.size})")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    xc = x - x.mean()
    yc = y - y.mean()
    denom = math.sqrt(float(np.dot(xc, xc)) * float(np.dot(yc, yc)))
    if denom == 0.0 or not math.isfinite(denom):
        return math.nan
    return float(np.clip(np.dot(xc, yc) / denom, -1.0, 1.0))


def rank_average(x: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, tied values sharing the average of their ranks."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    cuts = np.flatnonzero(xs[1:] != xs[:-1]) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [n]))
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho (Pearson r of average ranks); NaN when ``n < 2`` or either array is constant."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman: arrays differ in length ({x.size} vs {y.size})")
    if x.size < 2:
        return math.nan
    return pearson(rank_average(x), rank_average(y))


# ----------------------------------------------------------------------------- loading


def _read_sequence_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Read ``sequence<TAB>expression`` lines; trailing blank lines are allowed, inner ones are not."""
    sequences: list[str] = []
    values: list[float] = []
    blank_at: int | None = None
    with open_text(path) as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                blank_at = blank_at or lineno
                continue
            if blank_at is not None:
                raise DataError("blank line inside the sequence file (it would shift every position)", path, blank_at)
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError(
                    f"expected 'sequence<TAB>expression', got {len(parts)} tab-separated fields", path, lineno
                )
            seq, text = parts[0].strip(), parts[1].strip()
            if not seq:
                raise DataError("empty sequence", path, lineno)
            sequences.append(seq)
            values.append(parse_float(text, path, lineno, "measured expression"))
    if not sequences:
        raise DataError("sequence file holds no sequences", path)
    return sequences, np.asarray(values, dtype=np.float64)


def _parse_pos(text: str, column: str, n: int, path: Path, line: int) -> int:
    """Parse one position (``"12"`` or an integral float such as ``"12.0"``) and range-check it."""
    text = text.strip()
    try:
        pos = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"column '{column}': {text!r} is not an integer position", path, line) from None
        if not math.isfinite(value) or value != int(value):
            raise DataError(f"column '{column}': {text!r} is not an integer position", path, line) from None
        pos = int(value)
    if not 0 <= pos < n:
        raise DataError(f"column '{column}': position {pos} outside the sequence file's range [0, {n})", path, line)
    return pos


def _read_subset_csv(
    path: Path, columns: tuple[str, ...], sequences: list[str]
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Read the position columns of one subset CSV.

    Returns an ``(rows, len(columns))`` int array of positions and a list of ``(line, problem)``
    for rows whose ``*sequence`` text disagrees with the sequence file (caller warns).
    """
    n = len(sequences)
    seq_columns = {"pos": "sequence", "alt_pos": "alt_sequence", "ref_pos": "ref_sequence"}
    rows: list[list[int]] = []
    mismatches: list[tuple[int, str]] = []
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataError("empty file (no header line)", path, 1)
        names = [name.strip() for name in header]
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            index.setdefault(name, i)  # index columns ('' / 'Unnamed: 0') are simply never looked up
        for column in columns:
            if column not in index:
                found = ", ".join(repr(c) for c in names)
                raise DataError(f"missing required column '{column}' (header has {found})", path, 1)
        wanted = [index[c] for c in columns]
        checks = [(index[seq_columns[c]], c) for c in columns if seq_columns[c] in index]
        width = max(wanted) + 1
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < width:
                raise DataError(f"row has {len(row)} fields, fewer than the header needs", path, line)
            positions = [_parse_pos(row[i], c, n, path, line) for i, c in zip(wanted, columns)]
            for (seq_i, column), pos in zip(checks, positions):
                if seq_i < len(row):
                    text = row[seq_i].strip()
                    if text and text != sequences[pos]:
                        mismatches.append((line, f"'{seq_columns[column]}' differs from sequence file line {pos + 1}"))
            rows.append(positions)
    return np.asarray(rows, dtype=np.int64).reshape(-1, len(columns)), mismatches


def load_test_suite(folder: str | Path, sequences: str | None = None) -> TestSuite:
    """Load a DREAM test folder.

    ``sequences`` overrides the sequence file name (relative to ``folder``, or absolute).
    Subset files that are absent are listed in ``missing``; a missing folder or sequence file,
    a missing required column, or a bad / out-of-range position raises :class:`DataError`.
    A subset whose ``sequence`` text disagrees with the sequence file triggers a warning.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError("test folder does not exist", folder)
    if not folder.is_dir():
        raise DataError("test folder is not a directory", folder)
    seq_path = folder / (sequences or SEQUENCE_FILE)
    if not seq_path.is_file():
        raise DataError("sequence file not found", seq_path)
    seqs, measured = _read_sequence_file(seq_path)

    singles: dict[str, np.ndarray] = {}
    pairs: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for name in (*SINGLE_SUBSETS, *PAIR_SUBSETS):
        path = folder / SUBSET_FILES[name]
        if not path.is_file():
            missing.append(name)
            continue
        if name in SINGLE_SUBSETS:
            positions, mismatches = _read_subset_csv(path, ("pos",), seqs)
            singles[name] = np.unique(positions[:, 0])
        else:
            positions, mismatches = _read_subset_csv(path, ("alt_pos", "ref_pos"), seqs)
            pairs[name] = np.unique(positions, axis=0).reshape(-1, 2)
        if mismatches:
            line, problem = mismatches[0]
            warnings.warn(
                f"{path}:{line}: {problem} ({len(mismatches)} row(s) in this file disagree; "
                "is the sequence file the right one?)",
                stacklevel=2,
            )
    return TestSuite(folder=folder, sequences=seqs, measured=measured, singles=singles, pairs=pairs, missing=missing)


# ----------------------------------------------------------------------------- scoring


def _check_predictions(suite: TestSuite, predictions: np.ndarray) -> np.ndarray:
    """Return predictions as a float64 ``(n,)`` array, or raise ``ValueError``."""
    pred = np.asarray(predictions, dtype=np.float64)
    if pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred[:, 0]
    if pred.ndim != 1:
        raise ValueError(f"predictions must be 1-D (one value per sequence), got shape {pred.shape}")
    if pred.size != len(suite.sequences):
        raise ValueError(
            f"got {pred.size} predictions for {len(suite.sequences)} test sequences "
            f"(sequence file in {suite.folder}); predict every line, in file order"
        )
    bad = np.flatnonzero(~np.isfinite(pred))
    if bad.size:
        raise ValueError(f"{bad.size} prediction(s) are not finite (first at position {int(bad[0])})")
    return pred


def subset_values(suite: TestSuite, predictions: np.ndarray) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """Per present subset: ``(kind, predicted, measured)``; pair subsets give ``alt - ref`` differences.

    Ordered as :data:`SUBSET_WEIGHTS`; ``kind`` is ``"all"``, ``"single"`` or ``"pair"``.
    """
    pred = _check_predictions(suite, predictions)
    meas = suite.measured
    out: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    for name in SUBSET_WEIGHTS:
        if name == "all":
            out[name] = ("all", pred, meas)
        elif name in suite.singles:
            pos = suite.singles[name]
            out[name] = ("single", pred[pos], meas[pos])
        elif name in suite.pairs:
            alt, ref = suite.pairs[name][:, 0], suite.pairs[name][:, 1]
            out[name] = ("pair", pair_differences(pred, alt, ref), pair_differences(meas, alt, ref))
    return out


def unscored_reason(kind: str, pred: np.ndarray, meas: np.ndarray) -> str | None:
    """Why a subset's correlation means nothing (too few items, a constant side), or None when it can be scored."""
    items = "pairs" if kind == "pair" else "sequences"
    if pred.size < MIN_ITEMS:
        return f"{pred.size} {items}, a correlation needs at least {MIN_ITEMS}"
    if np.ptp(pred) == 0:
        return "constant prediction" + (" difference" if kind == "pair" else "")
    if np.ptp(meas) == 0:
        return "constant measured " + ("difference" if kind == "pair" else "values")
    return None


def score_predictions(suite: TestSuite, predictions: np.ndarray) -> dict[str, Any]:
    """Score predictions (one per sequence-file line) on every present subset.

    Returns a JSON-serialisable dict::

        {"pearson_score": float | None, "spearman_score": float | None, "partial": bool,
         "missing": [subset, ...], "not_scored": [subset, ...], "weight_sum": float,
         "weight_total": float, "n_sequences": int,
         "subsets": {name: {"r", "rho", "n", "weight", "kind", "scored"[, "reason"]}}}

    A subset with fewer than :data:`MIN_ITEMS` items or a constant side is not scored (``r`` / ``rho``
    None, ``reason`` says why, a warning is logged). ``weight_sum`` is the total weight of the scored
    subsets, over which both scores are weighted (``weight_total``, 4.65, when every subset is scored).
    ``partial`` is true when a subset file is missing or a subset is not scored.
    """
    values = subset_values(suite, predictions)
    subsets: dict[str, dict[str, Any]] = {}
    p_num = s_num = weight_sum = 0.0
    for name, (kind, pred, meas) in values.items():
        weight = SUBSET_WEIGHTS[name]
        reason = unscored_reason(kind, pred, meas)
        r = rho = math.nan
        if reason is None:
            r, rho = pearson(pred, meas), spearman(pred, meas)
            if not (math.isfinite(r) and math.isfinite(rho)):  # values so large that the sums overflow
                reason = "undefined correlation"
        row: dict[str, Any] = {"r": None, "rho": None, "n": int(pred.size), "weight": weight, "kind": kind}
        if reason is None:
            p_num += weight * r * r
            s_num += weight * rho
            weight_sum += weight
            row.update(r=float(r), rho=float(rho), scored=True)
        else:
            log.warning("subset %s not scored: %s (left out of the weighted scores)", name, reason)
            row.update(scored=False, reason=reason)
        subsets[name] = row
    not_scored = [name for name, row in subsets.items() if not row["scored"]]
    return {
        "pearson_score": p_num / weight_sum if weight_sum > 0 else None,
        "spearman_score": s_num / weight_sum if weight_sum > 0 else None,
        "partial": bool(suite.missing) or bool(not_scored),
        "missing": list(suite.missing),
        "not_scored": not_scored,
        "weight_sum": weight_sum,
        "weight_total": sum(SUBSET_WEIGHTS.values()),
        "n_sequences": len(suite.sequences),
        "subsets": subsets,
    }
