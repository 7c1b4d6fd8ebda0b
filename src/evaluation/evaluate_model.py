"""Score a trained model on the DREAM test suite: predict its sequences, score them, write the report."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from src.errors import ConfigError
from src.evaluation.dream_suite import SEQUENCE_FILE, TestSuite, load_test_suite, score_predictions
from src.evaluation.prediction_file import prediction_columns, write_predictions
from src.evaluation.report import write_report
from src.inference import predict_sequences
from src.lit_modules.prixfixe_module import PrixFixeModule
from src.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

PREDICTIONS_NPY = "predictions.npy"  # float32 (n, T) in sequence-file order: paired bootstraps over sequences


def _sequence_path(suite: TestSuite, sequences: str | None) -> Path:
    return suite.folder / (sequences or SEQUENCE_FILE)


def evaluate_module(
    module: PrixFixeModule,
    test_dir: str | Path | TestSuite,
    out_dir: str | Path,
    sequences: str | None = None,
    rc_average: bool | None = None,
    batch_size: int = 512,
    device: str | None = None,
    progress: bool = False,
    precision: str = "32",
) -> dict[str, Any]:
    """Predict the suite's sequences with ``module``, score them and write the report into ``out_dir``.

    ``test_dir`` is a DREAM test folder (``sequences`` overrides its sequence file name) or an
    already loaded :class:`TestSuite`. Writes ``scores.json``, ``scores.md``, the scatter PNGs and
    ``predictions.tsv`` (and :data:`PREDICTIONS_NPY`, the same values as float32 ``(n, T)``); returns
    the :func:`score_predictions` dict.
    """
    suite = test_dir if isinstance(test_dir, TestSuite) else load_test_suite(test_dir, sequences)
    n_targets = int(module.hparams.get("n_targets", 1))
    if n_targets != 1:
        raise ConfigError(f"the DREAM test suite scores one target; this model predicts {n_targets}")
    preds = predict_sequences(
        module,
        suite.sequences,
        batch_size=batch_size,
        rc_average=rc_average,
        device=device,
        progress=progress,
        precision=precision,
        path=_sequence_path(suite, sequences),
        lines=np.arange(1, len(suite) + 1),
    )
    if not np.isfinite(preds).all():
        raise ConfigError(f"the model's predictions are not finite for {int((~np.isfinite(preds)).sum())} sequence(s)")
    scores = score_predictions(suite, preds[:, 0])
    out = Path(out_dir)
    write_report(scores, suite, preds[:, 0], out)
    write_predictions(out / "predictions.tsv", suite.sequences, preds, prediction_columns(module, 1))
    buffer = io.BytesIO()
    np.save(buffer, preds.astype(np.float32))
    atomic_write_bytes(out / PREDICTIONS_NPY, buffer.getvalue())
    log.debug("test-suite report written to %s", out)
    return scores
