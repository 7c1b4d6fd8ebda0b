"""The prediction task behind ``predict.py``: a checkpoint + a sequence file -> a TSV of predictions.

Hydra glue only: the checkpoint is loaded by :func:`src.checkpoint.load_module`, the input is read by
:func:`src.datamodules.readers.read_sequences` (FASTA, a data set's table, DREAM text or plain lines),
the sequences are predicted by :func:`src.inference.predict_sequences` and the TSV is written by
:mod:`src.evaluation.prediction_file`, with each prediction's id (or input line) first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from src.checkpoint import load_module
from src.datamodules.readers import Records, read_sequences
from src.datamodules.table_formats import data_set_tables
from src.errors import ConfigError
from src.evaluation.prediction_file import prediction_columns, write_predictions
from src.inference import check_orientation, predict_sequences
from src.validate import check_output_folder


def record_keys(records: Records) -> tuple[str, list[str]]:
    """The column that joins each prediction to its input: ``id`` (a FASTA header's first word, a table's id
    column) when the input has ids, else ``line`` (the 1-based input line)."""
    if records.ids is None:
        return "line", [str(int(number)) for number in records.lines]
    if records.kind == "fasta":  # the header's first word is the record's id; the rest is its description
        return "id", [(text.split() or [""])[0] for text in records.ids]
    return "id", list(records.ids)


def predict(cfg: DictConfig) -> dict[str, Any]:
    """``predict.py``: load the checkpoint, read + predict the input, write the TSV; returns a summary."""
    output = Path(cfg.output)
    if output.is_dir():
        raise ConfigError(f"output: {output} is a folder, expected a file path")
    check_output_folder(output.parent, "output", create=True)  # before the model is loaded and anything predicted
    module = load_module(cfg.ckpt_path)
    orientation = cfg.get("orientation")
    check_orientation(module.processing, orientation)  # before the input is read
    records = read_sequences(cfg.input, data_set_tables())
    rc = cfg.get("rc_average")
    # orientation=both: one pass with every read forward, one with every read reverse, side by side
    passes = ["forward", "reverse"] if orientation == "both" else [orientation]
    preds = np.concatenate(
        [
            predict_sequences(
                module,
                records.sequences,
                batch_size=int(cfg.get("batch_size", 512)),
                rc_average=None if rc is None else bool(rc),
                device=cfg.get("device", "auto"),
                progress=bool(cfg.get("progress", True)),
                path=records.path,
                lines=records.lines,
                ids=records.ids,  # FASTA headers or the table's id column: the mpra orientation flag
                orientation=flag,
                precision=str(cfg.get("precision", "32")),
            )
            for flag in passes
        ],
        axis=1,
    )
    columns = prediction_columns(module, preds.shape[1] // len(passes))
    if orientation == "both":
        columns = [f"{name}_{flag}" for flag in passes for name in columns]
    write_predictions(output, records.sequences, preds, columns, record_keys(records))
    print(f"wrote {len(records)} predictions ({', '.join(columns)}) to {output} (input read as {records.kind})")
    return {"n": len(records), "output": str(output), "columns": columns}
