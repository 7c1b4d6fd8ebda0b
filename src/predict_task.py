"""The prediction task behind ``predict.py``: a checkpoint + a sequence file -> a TSV of predictions.

Hydra glue only: the checkpoint is loaded by :func:`src.checkpoint.load_module`, the sequences are
predicted by :func:`src.inference.predict_sequences` and the TSV is written by
:mod:`src.evaluation.prediction_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from src.checkpoint import load_module
from src.datamodules.readers import read_sequences
from src.errors import ConfigError
from src.evaluation.prediction_file import prediction_columns, write_predictions
from src.inference import predict_sequences
from src.validate import check_output_folder


def predict(cfg: DictConfig) -> dict[str, Any]:
    """``predict.py``: load the checkpoint, read + predict the input, write the TSV; returns a summary."""
    output = Path(cfg.output)
    if output.is_dir():
        raise ConfigError(f"output: {output} is a folder, expected a file path")
    check_output_folder(output.parent, "output", create=True)  # before the model is loaded and anything predicted
    module = load_module(cfg.ckpt_path)
    records = read_sequences(cfg.input)
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
        ids=records.ids,  # FASTA headers: the mpra processing's orientation flag
        precision=str(cfg.get("precision", "32")),
    )
    columns = prediction_columns(module, preds.shape[1])
    write_predictions(output, records.sequences, preds, columns)
    print(f"wrote {len(records)} predictions ({', '.join(columns)}) to {output}")
    return {"n": len(records), "output": str(output), "columns": columns}
