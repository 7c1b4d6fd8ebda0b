"""The evaluation task behind ``evaluate.py``: score a checkpoint or a predictions file on the DREAM test suite.

Either ``ckpt_path`` (the suite's sequences are predicted in line order with
:func:`src.predict_task.predict_sequences`) or ``predictions`` (a ``predict.py`` TSV
in the test file's line order, ``sequence<TAB>value`` lines, or one number per
line) is scored with :func:`score_predictions`; the report (``scores.json``,
``scores.md``, ``scatter_<subset>.png``, plus ``predictions.tsv`` for a checkpoint)
goes to ``out_dir`` and the table is printed. ``logger=wandb`` also logs the scores
and the scatter plots to an offline W&B run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from src.datamodules.errors import ConfigError, DataError
from src.datamodules.readers import parse_float
from src.evaluation.dream_suite import SEQUENCE_FILE, TestSuite, load_test_suite, score_predictions
from src.evaluation.report import format_table, write_report
from src.lit_modules.prixfixe_module import PrixFixeModule
from src.predict_task import load_module, predict_sequences, prediction_columns, write_predictions

log = logging.getLogger(__name__)


def default_out_dir(ckpt_path: str | Path | None) -> Path:
    """``<run folder>/evaluation`` for ``<run folder>/checkpoints/x.ckpt``; ``./evaluation`` without a checkpoint."""
    if ckpt_path is None:
        return Path("evaluation")
    parent = Path(ckpt_path).resolve().parent
    run_dir = parent.parent if parent.name == "checkpoints" else parent
    return run_dir / "evaluation"


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
) -> dict[str, Any]:
    """Predict the suite's sequences with ``module``, score them and write the report into ``out_dir``.

    ``test_dir`` is a DREAM test folder (``sequences`` overrides its sequence file name) or an
    already loaded :class:`TestSuite`. Writes ``scores.json``, ``scores.md``, the scatter PNGs and
    ``predictions.tsv``; returns the :func:`score_predictions` dict.
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
        path=_sequence_path(suite, sequences),
        lines=np.arange(1, len(suite) + 1),
    )
    if not np.isfinite(preds).all():
        raise ConfigError(f"the model's predictions are not finite for {int((~np.isfinite(preds)).sum())} sequence(s)")
    scores = score_predictions(suite, preds[:, 0])
    out = Path(out_dir)
    write_report(scores, suite, preds[:, 0], out)
    write_predictions(out / "predictions.tsv", suite.sequences, preds, prediction_columns(module, 1))
    log.debug("test-suite report written to %s", out)
    return scores


# ----------------------------------------------------------------------------- predictions given directly


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
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path) from None
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


# ----------------------------------------------------------------------------- W&B


def _flat_scores(scores: dict[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key in ("pearson_score", "spearman_score"):
        if scores.get(key) is not None:
            flat[f"test/{key}"] = float(scores[key])
    flat["test/partial"] = float(bool(scores.get("partial")))
    for name, row in scores.get("subsets", {}).items():
        for stat in ("r", "rho", "n"):
            if row.get(stat) is not None:
                flat[f"test/{name}/{stat}"] = float(row[stat])
    return flat


def log_to_wandb(
    scores: dict[str, Any], written: dict[str, Path], out_dir: Path, wandb_cfg: Any, name: str, config: dict
) -> None:
    """Log the scores (run summary) and the scatter PNGs to a W&B run (offline unless the user chose a mode)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    mode = OmegaConf.select(wandb_cfg, "mode", default=None) if wandb_cfg is not None else None
    mode = str(mode or os.environ.get("WANDB_MODE") or "offline")
    project = OmegaConf.select(wandb_cfg, "project", default=None) if wandb_cfg is not None else None
    run = wandb.init(
        project=str(project or "prixfixe"),
        name=name,
        job_type="evaluate",
        dir=str(out_dir),
        mode=mode,
        config=config,
        reinit="finish_previous",
    )
    try:
        log_scores_to_run(run, scores, written)
    finally:
        wandb.finish()


def log_scores_to_run(run: Any, scores: dict[str, Any], written: dict[str, Path]) -> None:
    """Scores into the run summary (``test/...``), scatter PNGs as images, in an open W&B run."""
    import wandb

    run.summary.update(_flat_scores(scores))
    images = {
        f"test/scatter_{key[len('scatter_') : -len('.png')]}": wandb.Image(str(path))
        for key, path in written.items()
        if key.startswith("scatter_")
    }
    if images:
        run.log(images)


# ----------------------------------------------------------------------------- task


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """``evaluate.py``: score a checkpoint or a predictions file; prints the table, returns the scores."""
    ckpt, given = cfg.get("ckpt_path"), cfg.get("predictions")
    if bool(ckpt) == bool(given):
        raise ConfigError(
            "give exactly one of ckpt_path=<checkpoint> or predictions=<file>"
            + (" (both were set)" if ckpt else " (neither was set)")
        )
    module = load_module(ckpt) if ckpt else None  # a bad checkpoint fails before any data is read
    test = cfg.test
    suite = load_test_suite(test, cfg.get("test_sequences"))
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else default_out_dir(ckpt)
    rc = cfg.get("rc_average")
    if module is not None:
        scores = evaluate_module(
            module,
            suite,
            out_dir,
            sequences=cfg.get("test_sequences"),
            rc_average=None if rc is None else bool(rc),
            batch_size=int(cfg.get("batch_size", 512)),
            device=cfg.get("device", "auto"),
            progress=bool(cfg.get("progress", True)),
        )
        hp = module.hparams
        name = f"eval-{hp.first['name']}-{hp.core['name']}-{hp.final['name']}"
    else:
        preds = read_prediction_file(given, suite)
        scores = score_predictions(suite, preds)
        write_report(scores, suite, preds, out_dir)
        name = f"eval-{Path(given).stem}"
    print(format_table(scores), end="")
    print(f"report written to {out_dir}")

    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is not None:
        written = {p.name: p for p in out_dir.glob("scatter_*.png")}
        config = {"ckpt_path": ckpt, "predictions": given, "test": str(test), "rc_average": rc}
        if module is not None:
            config["model"] = dict(module.hparams)
        log_to_wandb(scores, written, out_dir, wandb_cfg, name, config)
    return scores
