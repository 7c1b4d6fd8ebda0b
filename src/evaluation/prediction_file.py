"""The prediction file: the TSV ``predict.py`` writes, and the reader ``evaluate.py predictions=...`` scores.

Written: header ``sequence<TAB>prediction`` (``prediction_<name>`` per target for several targets),
one row per sequence in input order, float32 values in their shortest exact form; ``predict.py``
puts a key column first (``id``: the FASTA id or the table's id; ``line``: the input line), so
that predictions join back to their inputs. Read: that TSV,
``sequence<TAB>value`` lines without a header, or one number per line, in the test file's order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.datamodules.readers import open_text, parse_float
from src.errors import DataError
from src.evaluation.dream_suite import TestSuite
from src.utils.io import atomic_write_text


def prediction_columns(module: Any, n_targets: int) -> list[str]:
    """``["prediction"]`` for one target, ``prediction_<name>`` per target otherwise."""
    if n_targets == 1:
        return ["prediction"]
    names = module.hparams.get("target_names") or [f"t{i}" for i in range(n_targets)]
    return [f"prediction_{name}" for name in list(names)[:n_targets]]


def format_predictions(
    sequences: Sequence[str],
    predictions: np.ndarray,
    columns: Sequence[str],
    key: tuple[str, Sequence[str]] | None = None,
) -> str:
    """TSV text: header ``[key<TAB>]sequence<TAB><columns>``, one row per sequence (float32 as shortest repr).

    ``key`` = (column name, one value per sequence), e.g. ``("id", ids)`` or ``("line", numbers)``.
    """
    pred = np.asarray(predictions, dtype=np.float32).reshape(len(sequences), -1)
    keys = [] if key is None else list(key[1])
    if key is not None and len(keys) != len(sequences):
        raise ValueError(f"{len(keys)} {key[0]} values for {len(sequences)} sequences")
    rows = ["\t".join([*([key[0]] if key else []), "sequence", *columns])]
    for i, (seq, values) in enumerate(zip(sequences, pred.tolist())):
        cells = [seq, *(repr(v) if math.isfinite(v) else "nan" for v in values)]
        rows.append("\t".join([keys[i], *cells] if key else cells))
    return "\n".join(rows) + "\n"


def write_predictions(
    path: str | Path,
    sequences: Sequence[str],
    predictions: np.ndarray,
    columns: Sequence[str],
    key: tuple[str, Sequence[str]] | None = None,
) -> Path:
    """Write :func:`format_predictions` atomically."""
    return atomic_write_text(path, format_predictions(sequences, predictions, columns, key))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_prediction_file(path: str | Path, suite: TestSuite) -> np.ndarray:
    """Predictions in the suite's line order from a file; problems -> DataError citing file:line.

    Accepted: a ``predict.py`` TSV (header with ``sequence`` and ``prediction`` columns, or a
    single ``prediction_<name>`` column), ``sequence<TAB>value`` lines without a header, or one
    number per line (an optional non-numeric header line is skipped). Sequences, when present,
    must match the test sequence file line by line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("predictions file not found" if not path.exists() else "is not a file", path)
    with open_text(path) as handle:  # plain or gzip; bytes that are not UTF-8 -> DataError citing the line
        text = handle.read()
    rows = [(i, line.rstrip("\r")) for i, line in enumerate(text.split("\n"), start=1)]
    while rows and not rows[-1][1].strip():
        rows.pop()
    if not rows:
        raise DataError("file is empty", path)

    first = rows[0][1].split("\t")
    seq_col: int | None = None
    if not all(_is_number(c) for c in first):  # a header line (or sequence<TAB>value without header)
        names = [c.strip() for c in first]
        if len(first) == 2 and _is_number(first[1]) and not _is_number(first[0]):
            seq_col, val_col = 0, 1  # sequence<TAB>value, no header
        else:
            rows = rows[1:]
            value_cols = [i for i, n in enumerate(names) if n == "prediction" or n.startswith("prediction_")]
            if len(names) == 1:
                val_col = 0
            elif len(value_cols) == 1:
                val_col = value_cols[0]
                seq_col = names.index("sequence") if "sequence" in names else None
            else:
                raise DataError(
                    f"expected one 'prediction' column (header has: {', '.join(names)})"
                    if not value_cols
                    else f"{len(value_cols)} prediction columns; the DREAM suite scores one target",
                    path,
                    1,
                )
    elif len(first) == 1:
        val_col = 0
    else:
        raise DataError(f"expected one number per line, found {len(first)} tab-separated fields", path, rows[0][0])

    values: list[float] = []
    for number, line in rows:
        if not line.strip():
            raise DataError("blank line (every line must hold one prediction, in the test file's order)", path, number)
        cells = line.split("\t")
        if len(cells) <= max(val_col, seq_col or 0):
            raise DataError(f"too few tab-separated fields ({len(cells)})", path, number)
        value = parse_float(cells[val_col], path, number, "prediction")
        i = len(values)
        if seq_col is not None and i < len(suite) and cells[seq_col].strip().upper() != suite.sequences[i].upper():
            raise DataError(
                f"sequence differs from test sequence file line {i + 1} (predictions must follow its order)",
                path,
                number,
            )
        values.append(value)
    if len(values) != len(suite):
        raise DataError(
            f"{len(values)} predictions for {len(suite)} test sequences (one per sequence-file line, in order)", path
        )
    return np.asarray(values, dtype=np.float64)
