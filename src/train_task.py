"""The training task behind ``train.py``: compose, validate data, train, write results.

Order matters for reliability: the network is composed from the config first (an
impossible combination fails before any data is read), then ``ckpt_path`` / ``init_from``
are checked, then the data is read and validated, and only then is anything written
to the run folder (a failed run leaves the folder Hydra made for it empty).

Reproducibility and resumption: the epoch's batches are a function of ``(seed, epoch)``
and the module reseeds its random draws at every epoch start, so a run killed at any
point and resumed with ``ckpt_path=last`` / ``resume=true`` (same run folder) ends with
the metrics of an uninterrupted one; :class:`EpochStream` makes both hold in Lightning.

Test split: when the data publishes one (a folder's test file, ``set`` = Test, ``data.test_fold``),
the best checkpoint (by the monitored metric, ``monitor:``; the last one only when none was kept) is scored on it after
training: ``test/pearson``, ``test/spearman``, ``test/mse`` (and ``_<task>`` per target) go into
``metrics.json`` (``metrics``), the loggers (W&B, CSV) and so the sweep ledger and leaderboard;
``test_predictions.tsv`` holds the measured and predicted values.

Outcome: ``metrics.json`` records ``"status": "ok"``, ``"collapsed"`` when the last validation
predicted a constant (zero spread or undefined Pearson r; the run itself completed), or
``"diverged"`` when the loss became NaN/inf (then :class:`DivergedError` is raised; the
checkpoints written before stay).
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.checkpoint import (
    TensorDigest,
    check_resume,
    init_from_checkpoint,
    load_module,
    resolve_ckpt_path,
    transfer_from_checkpoint,
)
from src.compilation import compile_backend, compile_network
from src.datamodules.datamodule import PrixFixeDataModule
from src.errors import ConfigError, DivergedError
from src.evaluation import TestSuite, load_test_suite
from src.evaluation.evaluate_model import PREDICTIONS_NPY
from src.evaluation.prediction_file import write_predictions
from src.final_validation import ValidateAtStop
from src.head_bias import start_head_at_targets
from src.host_memory import keep_freed_memory
from src.inference import resolve_device
from src.interrupts import StopOnSignal, as_interrupted, exit_status, interrupted_message
from src.lit_modules.collapse import collapse_checks
from src.lit_modules.metrics import check_monitor, metric_names, monitor_of
from src.lit_modules.prixfixe_module import PrixFixeModule, module_factory
from src.peak_lr import report_peak, resolve_peak
from src.precision import apply_precision_fallback
from src.resume_state import ResumeState
from src.retries import retries_of, train_with_retries
from src.run_completion import completed_run, interrupted_job_checkpoint, keep_history
from src.run_lock import releasing_run_locks, take_run_lock
from src.sweep.halving import rung_callbacks, rung_checkpoint
from src.utils.io import atomic_write_text, json_safe, write_json
from src.utils.naming import combination_of
from src.utils.run_dir import remove_unused_run_dir
from src.utils.wandb_offline import finish_run, use_offline_defaults
from src.validate import check_output_folder, validate_config

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig) -> PrixFixeModule:
    """Compose the model from the config alone (no data read)."""
    return module_factory(cfg, int(cfg.data.n_targets))()


def build_datamodule(cfg: DictConfig, module: PrixFixeModule) -> PrixFixeDataModule:
    missing = [k for k in cfg.data if OmegaConf.is_missing(cfg.data, k)]
    if missing:
        key = f"data.{missing[0]}"
        raise ConfigError(f"missing required config value {key} (set it on the command line: {key}=...)")
    return instantiate(cfg.datamodule, source=instantiate(cfg.data.source), processing=module.processing)


WANDB_ID_FILE = "wandb_run_id"  # the run folder's W&B run id: a resumed run continues the same W&B run


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Any]:
    loggers = []
    for name, lcfg in (cfg.get("logger") or {}).items():
        if lcfg is None:
            continue
        if name == "wandb":
            use_offline_defaults()  # never touches the network unless asked
            id_file = run_dir / WANDB_ID_FILE
            run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
            atomic_write_text(id_file, run_id + "\n")
            loggers.append(instantiate(lcfg, save_dir=str(run_dir), id=run_id, resume="allow"))
            continue
        loggers.append(instantiate(lcfg, save_dir=str(run_dir)))
    return loggers


def log_model_to_wandb(trainer: L.Trainer, module: PrixFixeModule) -> None:
    """The parameter count and the composed graph (``describe``) in the W&B run's config and summary."""
    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.config.update(
                {"model/params": params, "model/graph": module.describe()}, allow_val_change=True
            )
            lg.experiment.summary["model/params"] = params


class EpochStream(L.Callback):
    """Tells the :class:`EpochBatchSampler` which epoch it serves, also in a resumed run's first epoch.

    Lightning calls ``set_epoch`` only on a loader's ``sampler`` or ``batch_sampler.sampler``, never on
    the batch sampler itself; without this every epoch would replay epoch 0's batches.
    """

    @staticmethod
    def _set_epoch(trainer: L.Trainer) -> None:
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(trainer.current_epoch)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set_epoch(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set_epoch(trainer)


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[L.Callback]:
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    checkpoints = str(run_dir / "checkpoints")
    metric, mode = monitor_of(cfg)
    callbacks: list[L.Callback] = [
        EpochStream(),
        ResumeState(),  # a resume continues at the checkpoint's step: its batches, random draws and schedule
        ValidateAtStop(),  # a max_steps stop inside an epoch validates (metrics, best checkpoint) before it ends
        TensorDigest(),  # every checkpoint carries its tensors' digest
        # the best epoch by the monitored metric (first: trainer.checkpoint_callback, the summary's best_*)
        ModelCheckpoint(
            dirpath=checkpoints,
            filename=f"best-epoch{{epoch:03d}}-{metric.rsplit('/', 1)[-1]}{{{metric}:.4f}}",
            auto_insert_metric_name=False,
            monitor=metric,
            mode=mode,
            save_top_k=1,
        ),
        # last.ckpt after every epoch, the point a killed run resumes from. (ModelCheckpoint(save_last=True)
        # of the best callback rewrites last.ckpt only in epochs that improve the best score.)
        ModelCheckpoint(dirpath=checkpoints, filename="last", save_top_k=1, enable_version_counter=False),
        StopOnSignal(run_dir / "checkpoints" / "last.ckpt"),  # SIGINT/SIGTERM: last.ckpt at the step, exit 130/143
    ]
    if cfg.get("logger"):
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return callbacks


def _metrics_dict(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job; returns a summary dict (also written to ``metrics.json``).

    The run folder is locked while the job uses it (:mod:`src.run_lock`); the lock goes however the job ends.
    """
    with releasing_run_locks():
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, Any]:
    validate_config(cfg)
    if retries_of(cfg) and not cfg.get("dry_run"):  # recipe.retries: collapsed/diverged runs start again
        return train_with_retries(train, cfg)
    compile_backend(cfg.get("compile"))  # a bad value fails before anything is read
    keep_freed_memory(cfg.get("keep_freed_memory", False))  # before the first large allocation
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "high"))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    started = time.time()
    module = build_module(cfg)
    check_monitor(monitor_of(cfg)[0], metric_names(cfg.final))
    plateau = (cfg.recipe.get("scheduler") or {}).get("monitor")  # a schedule that reacts to a validation metric
    if plateau is not None:
        check_monitor(str(plateau), metric_names(cfg.final), key="recipe.scheduler.monitor")
    name = combination_of(cfg)
    if cfg.get("dry_run"):
        print(f"prixfixe {name}")
        print(module.describe())
        remove_unused_run_dir(Path(cfg.paths.run_dir))
        return {"combination": name, "params": sum(p.numel() for p in module.parameters() if p.requires_grad)}

    if cfg.get("init_from_partial") and not cfg.get("init_from"):  # a transfer preset names no checkpoint itself
        raise ConfigError(
            "missing required config value init_from: init_from_partial=true (transfer) starts from a checkpoint "
            "(set it on the command line: init_from=<.ckpt>)"
        )
    run_dir = Path(cfg.paths.run_dir)
    ckpt_path = resolve_ckpt_path(cfg, run_dir)  # a missing checkpoint fails before data is read
    ckpt_path = ckpt_path or rung_checkpoint(cfg, run_dir)  # a halving job continues its last rung's run
    ckpt_path = ckpt_path or interrupted_job_checkpoint(cfg, run_dir)  # a sweep job a signal stopped
    if ckpt_path:
        check_resume(module, ckpt_path)  # corrupt, or another combination/processing: before anything is written
    check_output_folder(run_dir, "hydra.run.dir", create=True)  # a read-only folder fails before data is read
    take_run_lock(run_dir)  # one run per folder: a second process refuses here, before it writes anything
    finished = completed_run(cfg, run_dir, ckpt_path)  # resume=true of a finished run: one line, nothing written
    if finished is not None:
        return finished
    if cfg.get("init_from"):
        if ckpt_path:
            log.info("resuming from %s: init_from=%s is not applied", ckpt_path, cfg.init_from)
        elif cfg.get("init_from_partial"):
            report = transfer_from_checkpoint(module, cfg.init_from)
            refused = sorted(f"net.{r}" for r in module.hparams.freeze if f"net.{r}" in report.fresh_blocks())
            if refused:
                raise ConfigError(
                    f"freeze: {', '.join(refused)} was re-initialised by init_from={cfg.init_from} (nothing copied); "
                    "freezing it would keep random weights"
                )
        else:
            init_from_checkpoint(module, cfg.init_from, strict=bool(cfg.get("init_from_strict", True)))

    datamodule = build_datamodule(cfg, module)
    datamodule.setup("fit")  # reads and validates; raises DataError before anything is written
    test_suite = load_test_suite(cfg.test_data) if cfg.get("test_data") else None  # a bad folder fails now
    module.objective.fit(datamodule.train_targets)
    start_head_at_targets(module, datamodule.train_targets, fresh=not ckpt_path and not cfg.get("init_from"))

    apply_precision_fallback(cfg)  # trainer=cpu_fast without native bf16: 32-true, warned (and in config.yaml)
    peak = resolve_peak(cfg, module, datamodule, ckpt_path)  # recipe.lr=auto: range test on a copy (or cached)
    compile_network(module, cfg.get("compile"))  # after any weights are loaded; state-dict keys are unchanged
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    trainer: L.Trainer = instantiate(
        cfg.trainer,
        default_root_dir=str(run_dir),
        logger=build_loggers(cfg, run_dir) or False,
        callbacks=build_callbacks(cfg, run_dir) + rung_callbacks(cfg, run_dir),  # halving: stop at the rung
    )
    for lg in trainer.loggers:
        if hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    log_model_to_wandb(trainer, module)
    report_peak(peak, run_dir, trainer.loggers)  # the range test's curve, the peak in the W&B config
    print(module.describe())
    error: DivergedError | None = None
    interrupted: BaseException | None = None
    test_scores: dict[str, Any] | None = None
    test_split: dict[str, Any] | None = None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        test_split = score_test_split(trainer, datamodule, run_dir)
        if test_suite is not None:
            test_scores = evaluate_after_training(trainer, test_suite, run_dir)
    except DivergedError as err:
        error = err
    except (KeyboardInterrupt, SystemExit) as err:  # SIGINT/SIGTERM (src/interrupts.py): exit 130/143
        interrupted = as_interrupted(err)
    finally:
        # a non-zero W&B exit state for a run that did not finish
        finish_run(exit_code=exit_status(interrupted) if interrupted is not None else 1 if error is not None else None)
    ckpt_cb = trainer.checkpoint_callback
    status = "diverged" if error is not None else "collapsed" if module.collapsed else "ok"
    summary = {
        "status": "interrupted" if interrupted is not None else status,
        "combination": name,
        "first": cfg.first.name,
        "core": cfg.core.name,
        "final": cfg.final.name,
        "processing": cfg.processing.name,
        "recipe": cfg.recipe.name,
        "seed": int(cfg.seed),
        "params": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "lr": peak.record(),
        "epochs": int(trainer.current_epoch),
        "global_step": int(trainer.global_step),
        "metrics": _metrics_dict(trainer),
        "monitor": monitor_of(cfg)[0],
        "best_score": None if ckpt_cb is None or ckpt_cb.best_model_score is None else float(ckpt_cb.best_model_score),
        "best_checkpoint": (ckpt_cb.best_model_path or None) if ckpt_cb is not None else None,
        "last_checkpoint": str(last) if (last := run_dir / "checkpoints" / "last.ckpt").exists() else None,
        "seconds": round(time.time() - started, 3),
    }
    if error is not None:
        summary["error"] = str(error)
    if test_split is not None:
        summary["metrics"].update(test_split["metrics"])
        summary["test_checkpoint"] = test_split["checkpoint"]
    if test_scores is not None:
        summary["test"] = {k: test_scores[k] for k in ("pearson_score", "spearman_score", "partial")}
        summary["test"]["folder"] = str(Path(str(cfg.test_data)).resolve())
        summary["test"]["predictions"] = str(run_dir / "evaluation" / PREDICTIONS_NPY)  # evaluate_module wrote it
    summary = keep_history(summary, run_dir, resumed=bool(ckpt_path))  # earlier summaries under "previous"
    summary = json_safe(summary)  # NaN/inf metrics (a diverged run) become null
    write_json(run_dir / "metrics.json", summary)
    log.info("metrics written to %s", run_dir / "metrics.json")
    if interrupted is not None:
        log.warning(interrupted_message(interrupted, run_dir))
        raise interrupted
    if summary["status"] == "collapsed":
        log.warning(
            "collapsed: the last validation predicted a constant (Pearson undefined); %s has status collapsed. %s",
            run_dir / "metrics.json",
            collapse_checks(datamodule.train_targets, cfg.core.name, cfg.recipe.get("lr"), datamodule.target_range),
        )
    if error is not None:
        kept = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt")) if ckpt_cb is not None else []
        raise DivergedError(
            f"training diverged: {error} ({run_dir / 'metrics.json'} has status diverged; "
            f"checkpoints kept: {', '.join(kept) or 'none'})"
        ) from error
    return summary


def best_checkpoint(trainer: L.Trainer, run_dir: Path) -> str:
    """The best checkpoint by the monitored metric; the last one only when no best was kept."""
    callback = trainer.checkpoint_callback
    return getattr(callback, "best_model_path", "") or str(run_dir / "checkpoints" / "last.ckpt")


def score_test_split(trainer: L.Trainer, datamodule: PrixFixeDataModule, run_dir: Path) -> dict[str, Any] | None:
    """Score the best checkpoint on the data's test split (None without one); log and write predictions."""
    if datamodule.test_set is None:
        return None
    path = best_checkpoint(trainer, run_dir)
    module = load_module(path).to(resolve_device("auto"))
    metrics, pred, y = module.score_split(datamodule.test_dataloader(), prefix="test/")
    tasks = module.task_names
    columns = [*tasks, *(f"prediction_{t}" for t in tasks)]
    records = datamodule.split_records["test"]
    table = np.concatenate([y.numpy(), pred.numpy()], axis=1)
    write_predictions(run_dir / "test_predictions.tsv", records.sequences, table, columns)
    for lg in trainer.loggers:
        lg.log_metrics(metrics, step=trainer.global_step)
        lg.save()  # training has finalised the loggers already: write these rows now (CSV)
    log.info(
        "test split (%d sequences) scored with %s: %s",
        len(records),
        Path(path).name,
        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
    )
    return {"metrics": metrics, "checkpoint": path}


def evaluate_after_training(trainer: L.Trainer, suite: TestSuite, run_dir: Path) -> dict[str, Any]:
    """Score the best (else last) checkpoint on the DREAM test suite; report in ``<run>/evaluation``."""
    from src.evaluation import format_table
    from src.evaluation.evaluate_model import evaluate_module
    from src.evaluation.wandb_scores import log_scores_to_run

    best = best_checkpoint(trainer, run_dir)
    out_dir = run_dir / "evaluation"
    scores = evaluate_module(load_module(best), suite, out_dir, device="auto")
    print(format_table(scores))
    written = {p.name: p for p in out_dir.glob("scatter_*.png")}
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger":
            log_scores_to_run(lg.experiment, scores, written)
    return scores
