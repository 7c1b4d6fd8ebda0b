"""The evaluation task behind ``evaluate.py``: score a checkpoint or a predictions file on the DREAM test suite.

Either ``ckpt_path`` (the suite's sequences are predicted in line order with
:func:`src.inference.predict_sequences`) or ``predictions`` (a ``predict.py`` TSV
in the test file's line order, ``sequence<TAB>value`` lines, or one number per
line) is scored with :func:`score_predictions`; the report (``scores.json``,
``scores.md``, ``scatter_<subset>.png``, plus ``predictions.tsv`` for a checkpoint)
goes to ``out_dir`` and the table is printed. ``logger=wandb`` also logs the scores
and the scatter plots to an offline W&B run.

Hydra glue only: the pieces live in :mod:`src.checkpoint`, :mod:`src.evaluation` and :mod:`src.inference`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from src.checkpoint import load_module
from src.errors import ConfigError
from src.evaluation.dream_suite import load_test_suite, score_predictions
from src.evaluation.evaluate_model import evaluate_module
from src.evaluation.prediction_file import read_prediction_file
from src.evaluation.report import format_table, write_report
from src.evaluation.wandb_scores import log_to_wandb
from src.utils.naming import combination_of
from src.validate import check_output_folder


def default_out_dir(ckpt_path: str | Path | None) -> Path:
    """``<run folder>/evaluation`` for ``<run folder>/checkpoints/x.ckpt``; ``./evaluation`` without a checkpoint."""
    if ckpt_path is None:
        return Path("evaluation")
    parent = Path(ckpt_path).resolve().parent
    run_dir = parent.parent if parent.name == "checkpoints" else parent
    return run_dir / "evaluation"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """``evaluate.py``: score a checkpoint or a predictions file; prints the table, returns the scores."""
    ckpt, given = cfg.get("ckpt_path"), cfg.get("predictions")
    if bool(ckpt) == bool(given):
        raise ConfigError(
            "give exactly one of ckpt_path=<checkpoint> or predictions=<file>"
            + (" (both were set)" if ckpt else " (neither was set)")
        )
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else default_out_dir(ckpt)
    check_output_folder(out_dir, "out_dir", create=True)  # a read-only run folder fails before predicting
    module = load_module(ckpt) if ckpt else None  # a bad checkpoint fails before any data is read
    test = cfg.test
    suite = load_test_suite(test, cfg.get("test_sequences"))
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
            precision=str(cfg.get("precision", "32")),
        )
        name = f"eval-{combination_of(module.hparams)}"
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
