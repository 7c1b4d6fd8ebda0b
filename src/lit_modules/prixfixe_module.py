"""The one LightningModule that trains any first/core/final combination.

It never knows which team it runs: blocks come from ``first``/``core``/``final``
configs (composed with inferred shapes), the loss, target transform and metrics
from the final config's ``objective`` and ``metrics``, the optimizer and schedule
from the recipe, and reverse-complement encodings from the processing. The
hyperparameters are plain config dicts, so a checkpoint alone rebuilds the model
(and loads with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.optim.lr_scheduler import ReduceLROnPlateau

from src.blocks.base import resolve_aux
from src.datamodules.processing import build_processing
from src.datamodules.processing.base import Processing
from src.errors import ConfigError, DivergedError
from src.lit_modules.composer import PrixFixeNet, compose
from src.lit_modules.metrics import DEFAULT_MONITOR, build_metrics, metric_names, monitor_of
from src.lit_modules.objectives import Objective

# Spearman keeps every validation prediction by design (the split is small); silence its reminder
warnings.filterwarnings("ignore", message="Metric `SpearmanCorrcoef` will save all targets")


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


FREEZABLE = ("first", "core", "final")


def check_freeze(freeze: Any) -> list[str]:
    """``freeze`` as a list of block roles; anything else is a ConfigError naming the key."""
    roles = [] if freeze is None else [freeze] if isinstance(freeze, str) else list(_plain(freeze))
    unknown = [r for r in roles if r not in FREEZABLE]
    if unknown:
        raise ConfigError(
            f"freeze: unknown block(s) {unknown}; use a list of {', '.join(FREEZABLE)} (e.g. [first,core])"
        )
    if set(roles) == set(FREEZABLE):
        raise ConfigError("freeze: freezing first, core and final leaves nothing to train")
    return [r for r in FREEZABLE if r in roles]


def is_collapsed(lo: Tensor, hi: Tensor, pearson: Tensor | None = None, rel_tol: float = 1e-6) -> bool:
    """Whether validation predictions are constant: for some target, ``max - min`` is within
    ``rel_tol`` of the prediction's magnitude, or its Pearson r is undefined (NaN/inf).

    ``lo``/``hi`` are the per-target minimum and maximum over the validation epoch. One host
    read per validation epoch; an epoch that saw no prediction (``lo`` still inf) is not collapsed.
    """
    seen = torch.isfinite(lo) & torch.isfinite(hi)
    scale = torch.maximum(lo.abs(), hi.abs()).clamp_min(1.0)
    constant = seen & ((hi - lo) <= rel_tol * scale)
    if pearson is not None:
        constant = constant | (seen & ~torch.isfinite(pearson.float().reshape(-1).to(lo.device)))
    return bool(constant.any())


class PrixFixeModule(L.LightningModule):
    """first -> core -> final with the final config's objective and the recipe's optimisation."""

    def __init__(
        self,
        first: dict,
        core: dict,
        final: dict,
        processing: dict,
        recipe: dict,
        n_targets: int = 1,
        aux_weights: dict | None = None,
        seed: int = 0,
        nan_check_every: int = 1,
        monitor: str = DEFAULT_MONITOR,
        target_names: list[str] | None = None,
        freeze: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.monitor = monitor  # the metric shown in the progress bar; not a hyperparameter (no effect on results)
        self.save_hyperparameters(
            {
                "first": _plain(first),
                "core": _plain(core),
                "final": _plain(final),
                "processing": _plain(processing),
                "recipe": _plain(recipe),
                "n_targets": int(n_targets),
                "aux_weights": _plain(aux_weights) or {},
                "seed": int(seed),
                "nan_check_every": int(nan_check_every),
                "target_names": list(target_names) if target_names else None,
                "freeze": check_freeze(freeze),
            }
        )
        hp = self.hparams
        self.processing: Processing = build_processing(hp.processing)
        self.objective: Objective = instantiate(hp.final["objective"])
        self.net: PrixFixeNet = compose(
            instantiate(hp.first["block"]),
            instantiate(hp.core["block"]),
            instantiate(hp.final["block"]),
            in_channels=self.processing.channels,
            seq_len=self.processing.seq_len,
            n_targets=hp.n_targets,
            outputs_per_target=self.objective.outputs_per_target,
            names=(hp.first["name"], hp.core["name"], hp.final["name"]),
        )
        self.metric_names = metric_names(hp.final)
        for role in hp.freeze:
            getattr(self.net, role).requires_grad_(False)
        self.train(self.training)  # frozen blocks start in eval mode
        self.val_metrics = build_metrics(self.metric_names, hp.n_targets).clone(prefix="val/")
        # global step of the first NaN/inf training loss, -1 while finite; kept on the device (see _check_finite)
        self._first_bad_step = torch.full((), -1, dtype=torch.long)
        # per-target range of this validation epoch's predictions (on device; read once at the epoch end)
        self._pred_lo = torch.full((int(n_targets),), float("inf"))
        self._pred_hi = torch.full((int(n_targets),), float("-inf"))
        self.collapsed = False  # the last validation epoch predicted a constant (set in on_validation_epoch_end)

    # ----------------------------------------------------------------- inference
    def forward(self, x: Tensor, batch: dict[str, Tensor] | None = None) -> Tensor:
        """Expression-scale prediction ``(B, T)`` for encoded inputs."""
        head, _ = self.net(x, batch)
        return self.objective.predict(head)

    def predict_expression(self, x: Tensor, rc_average: bool | None = None) -> Tensor:
        """Prediction ``(B, T)``, averaged over both strands when the processing supports it.

        Both strands go through one forward of ``2B`` rows (in eval mode every row is independent).
        """
        if not (self.processing.rc_average if rc_average is None else rc_average):
            return self(x)
        both = self(torch.cat([x, self.processing.reverse_complement(x)]))
        return 0.5 * (both[: len(x)] + both[len(x) :])

    # ------------------------------------------------------------------ training
    def train(self, mode: bool = True) -> PrixFixeModule:
        """Frozen blocks (``freeze``) stay in eval mode: BatchNorm keeps its running statistics, no dropout."""
        super().train(mode)
        for role in self.hparams.get("freeze") or []:
            getattr(self.net, role).eval()
        return self

    def on_train_epoch_start(self) -> None:
        self.train(True)  # Lightning restores per-module modes itself; keep frozen blocks in eval mode
        # dropout etc. draw from a generator reseeded per epoch: a resumed run repeats the same draws
        torch.manual_seed(int(self.hparams.seed) * 100_003 + self.current_epoch)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x, y = batch["x"], batch["y"]
        head, aux = self.net(x, batch)
        loss = self.objective.loss(head, y)
        if self.hparams.recipe.get("rc_conjoined"):
            # post-hoc conjoined: average the loss over the forward and reverse-complement passes; the
            # batch extras (tokens, masks) describe the forward strand, so auxiliary terms come from it alone
            head_rc, _ = self.net(self.processing.reverse_complement(x), None)
            loss = 0.5 * (loss + self.objective.loss(head_rc, y))
        total = loss
        weights = self.hparams.aux_weights or {}
        # a callable term is scored with the final config's own objective (deep supervision)
        for name, value in resolve_aux(aux, self.objective, y).items():
            weight = float(weights.get(name, weights.get(name.split("/")[-1], 1.0)))
            total = total + weight * value
            self.log(f"train/aux_{name.replace('/', '_')}", value, on_step=True, on_epoch=True, batch_size=len(y))
        self.log("train/loss", total, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(y))
        # remember the first non-finite step on the device: reading it back is a host sync, so _check_finite
        # does that only every nan_check_every steps and before anything is validated or checkpointed
        first = self._first_bad_step.to(total.device)
        bad = ~torch.isfinite(total.detach()) & (first < 0)
        self._first_bad_step = torch.where(bad, self.global_step, first)
        return total

    def _check_finite(self) -> None:
        """Raise :class:`DivergedError` if a training loss so far was NaN/inf (one host sync)."""
        step = int(self._first_bad_step)
        if step >= 0:  # every epoch's last batch checks, so the bad step lies in the current epoch
            raise DivergedError(f"training loss became NaN/inf at epoch {self.current_epoch}, step {step}")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = int(self.hparams.nan_check_every)
        last = self._trainer is not None and batch_idx + 1 >= self.trainer.num_training_batches
        if last or (every > 0 and (batch_idx + 1) % every == 0):
            self._check_finite()  # always at an epoch's last batch: no NaN weights reach validation or a checkpoint

    def on_validation_start(self) -> None:
        if self._trainer is not None and self.trainer.training:
            self._check_finite()  # a validation inside an epoch (val_check_interval) checks first, too

    def on_train_epoch_end(self) -> None:
        self._check_finite()

    def on_train_end(self) -> None:
        self._check_finite()  # a run ended by max_steps inside an epoch

    # ---------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._pred_lo = torch.full_like(self._pred_lo, float("inf"), device=self.device)
        self._pred_hi = torch.full_like(self._pred_hi, float("-inf"), device=self.device)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        x, y = batch["x"], batch["y"]
        head, _ = self.net(x, batch)
        self.log("val/loss", self.objective.loss(head, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        pred = self.objective.predict(head)
        if self.processing.rc_average:
            pred = 0.5 * (pred + self(self.processing.reverse_complement(x)))
        pred = pred.float()
        self._pred_lo = torch.minimum(self._pred_lo, pred.detach().amin(0))  # device ops only: no host sync
        self._pred_hi = torch.maximum(self._pred_hi, pred.detach().amax(0))
        if self.hparams.n_targets == 1:
            pred, y = pred[:, 0], y[:, 0]
        self.val_metrics.update(pred, y.float())

    @property
    def task_names(self) -> list[str]:
        """One label per target (``data.tasks``): metric suffixes and prediction columns."""
        n = int(self.hparams.n_targets)
        names = self.hparams.get("target_names") or []
        return [str(t) for t in names][:n] if len(names) >= n else [f"t{i}" for i in range(n)]

    def named_metrics(self, computed: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{"val/pearson": mean over targets, "val/pearson_<task>": per target (several targets)}``."""
        out: dict[str, Tensor] = {}
        for name, value in computed.items():
            out[name] = value.float().mean()
            if value.numel() > 1:
                out.update({f"{name}_{task}": v.float() for task, v in zip(self.task_names, value)})
        return out

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        pearson = values.get("val/pearson")
        self.collapsed = is_collapsed(self._pred_lo, self._pred_hi, pearson)
        for name, value in self.named_metrics(values).items():
            # torchmetrics already reduced over ranks: every rank logs the same global value
            self.log(name, value, prog_bar=name == self.monitor, sync_dist=True)
        self.val_metrics.reset()

    @torch.no_grad()
    def score_split(self, loader: Any, prefix: str = "test/") -> tuple[dict[str, float], Tensor, Tensor]:
        """Metrics (``<prefix>pearson``, ``<prefix>pearson_<task>``, ...), predictions and targets of a loader.

        Predictions are made as in validation (eval mode, strands averaged when the processing says so).
        """
        was_training = self.training
        self.eval()
        preds, targets = [], []
        try:
            for batch in loader:
                x = batch["x"].to(self.device)
                preds.append(self.predict_expression(x).float().cpu())
                targets.append(batch["y"].float().cpu())
        finally:
            self.train(was_training)
        pred, y = torch.cat(preds), torch.cat(targets)
        metrics = build_metrics(self.metric_names, int(self.hparams.n_targets)).clone(prefix=prefix)
        single = int(self.hparams.n_targets) == 1
        metrics.update(pred[:, 0] if single else pred, y[:, 0] if single else y)
        values = {k: float(v) for k, v in self.named_metrics(metrics.compute()).items()}
        return values, pred, y

    # ----------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict:
        recipe = self.hparams.recipe
        lr = float(recipe["lr"])
        trainable = [p for p in self.parameters() if p.requires_grad]  # frozen blocks are left out
        optimizer = instantiate(recipe["optimizer"])(trainable, lr=lr)
        if not recipe.get("scheduler"):
            return {"optimizer": optimizer}
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = instantiate(recipe["scheduler"])(optimizer, total_steps=total, lr=lr)
        if isinstance(scheduler, ReduceLROnPlateau):  # reacts to a validation metric: once per epoch
            config = {"scheduler": scheduler, "interval": "epoch", "frequency": 1, "monitor": scheduler.monitor}
            return {"optimizer": optimizer, "lr_scheduler": config}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    def describe(self) -> str:
        """The composed graph, the processing and the objective; last line ``params: N``."""
        lines = self.net.describe().splitlines()
        head = [
            f"processing: {self.processing.describe()} ({self.hparams.n_targets} target(s))",
            f"objective: {self.objective.describe()}",
        ]
        return "\n".join(head + lines)


def module_factory(cfg: DictConfig, n_targets: int) -> partial[PrixFixeModule]:
    """Bind a composed training config to the module constructor."""
    return partial(
        PrixFixeModule,
        first=cfg.first,
        core=cfg.core,
        final=cfg.final,
        processing=cfg.processing,
        recipe=cfg.recipe,
        n_targets=n_targets,
        aux_weights=cfg.get("aux_weights"),
        seed=cfg.seed,
        nan_check_every=cfg.get("nan_check_every", 1),
        monitor=monitor_of(cfg)[0],
        target_names=list(cfg.data.get("tasks") or cfg.data.get("target_names") or []) or None,
        freeze=cfg.get("freeze"),
    )
