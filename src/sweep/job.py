"""One job of a resumable sweep: the ledger bookkeeping around a training task in a Hydra multirun.

``python train.py -m first='glob(*)' core='glob(*)' final='glob(*)'`` runs every combination; in
multirun mode :func:`src.entry.run_task` hands each job to :func:`run_sweep_job`, which

* derives the job's identity (:func:`src.sweep.ledger.job_key`) from its task overrides, leaving
  out keys that do not change the result (:data:`NON_IDENTITY_KEYS` and the
  ``hydra.job.config.override_dirname.exclude_keys`` of the config, except the block groups);
* skips the job when the sweep's ledger already holds an ``ok`` record for it (unless
  ``sweep.rerun=true``), so re-running the same command resumes an interrupted sweep;
* otherwise runs it and appends one record: ``ok`` (metrics, params, seconds, peak memory),
  ``rejected`` (the blocks cannot be composed), ``diverged`` (NaN/inf loss) or ``failed``
  (anything else; the full traceback goes to ``<job dir>/error.log``);
* never re-raises an ``Exception``, so one bad combination cannot end the sweep (Hydra's
  launchers would abort the remaining batch and skip ``on_multirun_end``).

``dry_run=true`` jobs only compose and print; they neither skip nor append.
:class:`SummarizeCallback` (``hydra.callbacks.summarize``) writes the leaderboard and heatmaps
when the multirun ends (``python -m src.sweep.summarize <sweep dir>`` does the same by hand).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from src.errors import CompositionError, ConfigError, DivergedError, LedgerCorruptError, error_line
from src.sweep.ledger import (
    COMBINATION_KEYS,
    LEDGER_NAME,
    append_record,
    job_key,
    latest_by_key,
    make_record,
    peak_memory_mb,
    read_ledger,
)
from src.utils.wandb_offline import finish_run

log = logging.getLogger(__name__)

# overrides that never change a job's result: left out of its key (and of its folder name, see conf/train.yaml)
NON_IDENTITY_KEYS = frozenset(
    {
        "dry_run",
        "debug",
        "resume",
        "ckpt_path",
        "sweep.name",
        "sweep.rerun",
        "logger",
        "logger.wandb.mode",
        "trainer.enable_progress_bar",
        "trainer.enable_model_summary",
    }
)
NON_IDENTITY_PREFIXES = ("hydra.", "hydra/")
ERROR_LOG = "error.log"


# ----------------------------------------------------------------------------- job identity


def _override_value(text: str) -> object:
    """The value of ``name=value`` as Hydra parses it (``8`` -> 8, ``[1,2]`` -> [1, 2]); the raw text on failure."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_override(f"k={text}")
        value = parsed.value()
    except Exception:  # pragma: no cover - the override was already parsed once by Hydra
        return text
    return _plain_value(value)


def _plain_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def identity_overrides(
    task_overrides: Iterable[str],
    exclude: Iterable[str] = (),
    choices: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The overrides that define a job: ``{name: value}`` without ``+``/``++`` and without non-identity keys.

    ``choices`` (Hydra's ``runtime.choices``) fills in the first/core/final blocks that were not
    overridden, so a job's key always names its three blocks.
    """
    excluded = set(NON_IDENTITY_KEYS) | {e.lstrip("+~") for e in exclude}
    out: dict[str, object] = {}
    for item in task_overrides:
        text = str(item)
        name, sep, value = text.partition("=")
        deletion = name.startswith("~")
        plain = name.lstrip("+~").strip()
        if plain in excluded or plain.startswith(NON_IDENTITY_PREFIXES):
            continue
        if deletion:
            out["~" + plain] = _override_value(value) if sep and value else None
        else:
            out[plain] = _override_value(value) if sep else None
    for group in COMBINATION_KEYS:
        if group not in out and choices and choices.get(group) is not None:
            out[group] = str(choices[group])
    return out


# ----------------------------------------------------------------------------- the job


@dataclass
class JobContext:
    """Where a sweep job sits and who it is."""

    sweep_dir: Path
    job_dir: Path
    overrides: dict[str, object]
    rerun: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return job_key(self.overrides)

    @property
    def ledger(self) -> Path:
        return self.sweep_dir / LEDGER_NAME


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""
    if not HydraConfig.initialized():
        return False
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # pragma: no cover - a partially set Hydra config
        return False


def _as_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def job_context(cfg: DictConfig) -> JobContext:
    """The :class:`JobContext` of the running Hydra job."""
    hc = HydraConfig.get()
    exclude = [k for k in (hc.job.config.override_dirname.exclude_keys or []) if k not in COMBINATION_KEYS]
    choices = OmegaConf.to_container(hc.runtime.choices) if hc.runtime.choices is not None else {}
    overrides = identity_overrides(list(hc.overrides.task), exclude=exclude, choices=choices)
    sweep = cfg.get("sweep") or {}
    return JobContext(
        sweep_dir=Path(str(hc.sweep.dir)).absolute(),
        job_dir=Path(str(hc.runtime.output_dir)),
        overrides=overrides,
        rerun=_as_bool(sweep.get("rerun", False)),
    )


def classify(err: BaseException) -> str:
    """Ledger status of a job that raised ``err``."""
    if isinstance(err, CompositionError):
        return "rejected"
    if isinstance(err, DivergedError):
        return "diverged"
    return "failed"


def global_rank() -> int:
    """This process's rank when an external launcher (SLURM tasks, torchrun) started several; else 0."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def _externally_launched() -> bool:
    env = os.environ
    if "LOCAL_RANK" in env or "TORCHELASTIC_RUN_ID" in env:
        return True
    ntasks = env.get("SLURM_NTASKS", "1").strip()
    return ntasks.isdigit() and int(ntasks) > 1


def _device_count(devices: Any, accelerator: str) -> int:
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    text = str(devices).strip()
    if text.lstrip("-").isdigit():
        n = int(text)
        if n >= 0:
            return n
    if accelerator in ("cpu",):
        return 1
    torch = sys.modules.get("torch")
    try:
        return int(torch.cuda.device_count()) if torch is not None else 1
    except Exception:  # pragma: no cover
        return 1


def check_launch(cfg: DictConfig) -> None:
    """Refuse Lightning's script-relaunching ``ddp`` on several devices in a local multirun.

    Lightning starts the extra DDP processes by running ``sys.argv`` again, which in a multirun is
    the whole sweep. ``ddp_spawn`` (or SLURM starting one task per device) does not have that problem.
    """
    strategy = str(OmegaConf.select(cfg, "trainer.strategy", default="auto") or "auto")
    if not strategy.startswith("ddp") or any(s in strategy for s in ("spawn", "fork", "notebook")):
        return
    if _externally_launched():
        return
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    devices = OmegaConf.select(cfg, "trainer.devices", default=1)
    nodes = int(OmegaConf.select(cfg, "trainer.num_nodes", default=1) or 1)
    if _device_count(devices, accelerator) * nodes > 1:
        raise ConfigError(
            f"trainer.strategy={strategy} on several devices would re-run the whole sweep in each process; "
            "in a local multirun use trainer.strategy=ddp_spawn (or a SLURM launcher with one task per device)"
        )


def _reset_cuda_peak() -> None:
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
    except Exception:  # pragma: no cover
        pass


def _set_wandb_group(cfg: DictConfig, group: str) -> None:
    """Group the job's W&B run under the sweep folder name (unless ``logger.wandb.group`` was set)."""
    wandb_cfg = OmegaConf.select(cfg, "logger.wandb", default=None)
    if not isinstance(wandb_cfg, DictConfig) or wandb_cfg.get("group") is not None:
        return
    with open_dict(wandb_cfg):
        wandb_cfg.group = group


def _partial_summary(job_dir: Path) -> dict[str, Any]:
    """``metrics.json`` of a job that wrote one before failing (a diverged run), else ``{}``."""
    try:
        summary = json.loads((job_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(summary, dict):
        return {}
    params = summary.get("params")
    return {
        "metrics": {k: v for k, v in (summary.get("metrics") or {}).items() if isinstance(v, (int, float))},
        "params": params if isinstance(params, int) else None,
    }


def _ok_record(summary: Any, ctx: JobContext, seconds: float) -> dict[str, Any]:
    summary = summary if isinstance(summary, Mapping) else {}
    metrics = dict(summary.get("metrics") or {})
    best = summary.get("best_val_pearson")
    if best is not None:
        metrics.setdefault("val/pearson_best", best)
    status = "collapsed" if summary.get("status") == "collapsed" else "ok"
    return make_record(
        overrides=ctx.overrides,
        status=status,
        metrics=metrics,
        params=summary.get("params"),
        seconds=seconds,
        peak_memory_mb=peak_memory_mb(),
        run_dir=ctx.job_dir,
    )


def run_ledgered(task: Callable[[DictConfig], Any], cfg: DictConfig, ctx: JobContext) -> Any:
    """Run ``task(cfg)`` as one sweep job described by ``ctx`` (see the module doc)."""
    key = ctx.key
    dry_run = bool(cfg.get("dry_run"))
    writer = global_rank() == 0  # with one process per device, only rank 0 keeps the books
    if not dry_run and not ctx.rerun:
        try:
            previous = latest_by_key(read_ledger(ctx.ledger)).get(key)
        except LedgerCorruptError as err:
            log.error("cannot read the sweep ledger (%s); running the job", err)
            previous = None
        if previous is not None and previous.get("status") == "ok":
            log.info("skip %s: already ok in %s (sweep.rerun=true runs it again)", key, ctx.ledger)
            metrics = previous.get("metrics") or {}
            return {"status": "skipped", "key": key, "metrics": metrics, "best_val_pearson": None}

    _set_wandb_group(cfg, ctx.sweep_dir.name)
    _reset_cuda_peak()
    log.info("job %s -> %s", key, ctx.job_dir)
    started = time.time()
    try:
        check_launch(cfg)
        summary = task(cfg)
    except Exception as err:
        seconds = time.time() - started
        finish_run(exit_code=1)
        status = classify(err)
        message = error_line(err)
        if cfg.get("debug"):
            log.error("%s %s", status, key, exc_info=err)
        else:
            log.error("%s %s: %s", status, key, message)
        if dry_run or not writer:
            return None
        try:
            ctx.job_dir.mkdir(parents=True, exist_ok=True)
            (ctx.job_dir / ERROR_LOG).write_text(
                f"job: {key}\nstatus: {status}\n\n" + "".join(traceback.format_exception(err)), encoding="utf-8"
            )
        except OSError as io_err:  # pragma: no cover - the record still says what happened
            log.warning("could not write %s: %s", ctx.job_dir / ERROR_LOG, io_err)
        partial = _partial_summary(ctx.job_dir) if status == "diverged" else {}
        record = make_record(
            overrides=ctx.overrides,
            status=status,
            metrics=partial.get("metrics"),
            params=partial.get("params"),
            seconds=seconds,
            peak_memory_mb=peak_memory_mb(),
            error=message,
            run_dir=ctx.job_dir,
        )
        _append(ctx.ledger, record)
        return None
    if dry_run or not writer:
        return summary
    _append(ctx.ledger, _ok_record(summary, ctx, time.time() - started))
    return summary


def _append(ledger: Path, record: Mapping[str, Any]) -> None:
    """Append to the ledger; an I/O error is logged (the job will simply run again next time)."""
    try:
        append_record(ledger, record)
    except OSError as err:
        log.error(
            "could not append the %s record of %s to %s: %s", record.get("status"), record.get("key"), ledger, err
        )


def run_sweep_job(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run one job of a Hydra multirun with the sweep ledger (skip if ok, record the outcome)."""
    return run_ledgered(task, cfg, job_context(cfg))


# ----------------------------------------------------------------------------- end of the sweep


class SummarizeCallback(Callback):
    """Hydra callback: write the sweep's leaderboard and heatmaps when a multirun ends.

    Configured in ``conf/train.yaml`` as ``hydra.callbacks.summarize``; a failure of the summary
    is logged and never fails the sweep. Disable with ``hydra.callbacks.summarize.enabled=false``.
    """

    def __init__(self, metric: str = "val/pearson", log_wandb: bool = False, enabled: bool = True) -> None:
        self.metric = metric
        self.log_wandb = log_wandb
        self.enabled = enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        try:
            if config.get("dry_run"):
                return
            sweep_dir = Path(str(config.hydra.sweep.dir))
            if not (sweep_dir / LEDGER_NAME).is_file():
                log.info("no ledger in %s: no summary", sweep_dir)
                return
            from src.sweep.summarize import summarize

            result = summarize(sweep_dir, metric=self.metric, log_wandb=self.log_wandb)
            print(result["markdown"], end="", flush=True)
            for path in result["paths"]:
                log.info("wrote %s", path)
        except (Exception, SystemExit) as err:  # summarize raises SystemExit subclasses for a bad ledger
            log.warning("sweep summary failed (%s); run `python -m src.sweep.summarize <sweep dir>`", error_line(err))


__all__: Sequence[str] = (
    "NON_IDENTITY_KEYS",
    "JobContext",
    "SummarizeCallback",
    "check_launch",
    "classify",
    "global_rank",
    "identity_overrides",
    "in_multirun",
    "job_context",
    "run_ledgered",
    "run_sweep_job",
)
