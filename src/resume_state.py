"""What a resumed run restores beyond Lightning's own state: the place in the epoch, the random stream, the schedule.

:class:`ResumeState` (a callback of every training run):

* **Mid-epoch resume** (a checkpoint saved at a step inside an epoch, e.g. at an interrupt,
  :mod:`src.interrupts`): Lightning restores its loop counters but restarts the epoch's loader from its
  first batch. An epoch's batches are a function of ``(seed, epoch)``
  (:class:`~src.datamodules.datamodule.EpochBatchSampler`), so the sampler starts at the batch Lightning's
  restored counters say comes next (also after a ``max_steps`` stop inside an epoch that a higher
  ``max_steps`` continues); the global torch random state (dropout; reseeded only at epoch
  starts, which a mid-epoch resume does not repeat) is stored in every checkpoint and put back. The
  resumed run then trains on exactly the batches, with exactly the draws, of an uninterrupted one.
* **A longer run** (``resume=true`` with more epochs or a higher ``max_steps``): a schedule built for a
  number of steps (One-Cycle's ``total_steps``, cosine's ``T_max``) is stretched to the new total and
  continues from the current step (One-Cycle would otherwise refuse to step past its old total).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR

log = logging.getLogger(__name__)

# Lightning warns that a loader without state_dict() cannot resume inside an epoch; ResumeState does that
warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended")


def _batch_sampler(trainer: L.Trainer) -> Any:
    return getattr(trainer.train_dataloader, "batch_sampler", None)


def stretch_schedule(scheduler: Any, total: int) -> int | None:
    """Make a step-count schedule span ``total`` steps; the old total, or ``None`` when nothing changed."""
    if isinstance(scheduler, OneCycleLR) and scheduler.total_steps != total:
        old = scheduler.total_steps
        pct_start = (scheduler._schedule_phases[0]["end_step"] + 1) / old
        three_phase = len(scheduler._schedule_phases) == 3
        # the phase boundaries of a fresh One-Cycle over `total` steps (a throw-away optimizer; same formula)
        probe = OneCycleLR(
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
            max_lr=1.0,
            total_steps=total,
            pct_start=pct_start,
            three_phase=three_phase,
        )
        scheduler.total_steps = total
        scheduler._schedule_phases = probe._schedule_phases
        return old
    if isinstance(scheduler, CosineAnnealingLR) and scheduler.T_max != total:
        old = scheduler.T_max
        scheduler.T_max = total
        return old
    return None


class ResumeState(L.Callback):
    """Restores the place in the epoch, the random state and the schedule's length on resume (module doc)."""

    def __init__(self) -> None:
        self._loaded_rng: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "ResumeState"

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded_rng = dict(state_dict)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is None:
            return
        self._continue_schedule(trainer)
        sampler = _batch_sampler(trainer)
        if not callable(getattr(sampler, "resume_at", None)):
            return
        sampler.resume_at(lambda: self._position_in_epoch(trainer))
        if trainer.train_dataloader.num_workers > 0:
            # worker processes were handed batches when the loader's iterator was made (before the loops were
            # restored): make it again, so the first batches follow the restored epoch and position
            iter(trainer.fit_loop._data_fetcher)

    def _position_in_epoch(self, trainer: L.Trainer) -> int:
        """Batches of this epoch trained before the checkpoint (Lightning's count, asked as the epoch resumes).

        Inside an epoch, the random state of the checkpoint is put back too: the module reseeds only when an
        epoch starts, which a resumed epoch does not repeat.
        """
        consumed = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
        if consumed > 0:
            if self._loaded_rng is not None:
                torch.set_rng_state(self._loaded_rng["torch_rng"])
                if "cuda_rng" in self._loaded_rng and torch.cuda.is_available():
                    torch.cuda.set_rng_state_all(self._loaded_rng["cuda_rng"])
            log.info("resuming inside epoch %d after its first %d batches", trainer.current_epoch, consumed)
        return consumed

    def _continue_schedule(self, trainer: L.Trainer) -> None:
        total = int(trainer.estimated_stepping_batches)
        for config in trainer.lr_scheduler_configs:
            if config.interval != "step":
                continue
            old = stretch_schedule(config.scheduler, total)
            if old is not None:
                log.warning(
                    "the run now has %d optimizer steps (its schedule had %d): the learning-rate schedule is "
                    "stretched to %d steps and continues from step %d",
                    total,
                    old,
                    total,
                    trainer.global_step,
                )
