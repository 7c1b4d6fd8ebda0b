"""SIGINT and SIGTERM during training: stop at the next step boundary with a checkpoint, exit 130 / 143.

While a run trains, :class:`StopOnSignal` replaces the SIGINT (Ctrl-C) and SIGTERM (schedulers, ``kill``)
handlers. The first signal only takes note; at the end of the training step then running the callback
saves ``checkpoints/last.ckpt`` (written beside and renamed into place: an earlier last checkpoint stays
whole until the new one is complete) and raises :class:`Interrupted`, a :class:`SystemExit` with status
``128 + signal`` (130 for SIGINT, 143 for SIGTERM), which ``metrics.json``, the sweep ledger and the W&B
run record as ``interrupted``. The checkpoint holds Lightning's loop state (the step within the epoch)
and the random state (:mod:`src.resume_state`), so ``resume=true`` continues at that step with the
batches and random draws the uninterrupted run would have used.

A signal during an epoch's last step lets the epoch finish (validation and its checkpoint) and stops
after the next step; one after the run's last step lets the run complete (it is recorded ``ok`` and
the late signal is logged). A second signal stops at once, without a new checkpoint (the last one
written stays). Outside training (reading data, scoring the test split) Python's usual handling applies.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from src.errors import Interrupted
from src.sweep.identity import in_multirun

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def as_interrupted(err: BaseException) -> BaseException:
    """The exception that ends an interrupted run: a stop outside :class:`StopOnSignal`'s watch becomes
    :class:`Interrupted` too (Ctrl-C, which Lightning turns into ``sys.exit(1)``, and Lightning's own
    SIGTERM stop, e.g. during the sanity check), so the exit status is still 130 or 143."""
    if isinstance(err, Interrupted):
        return err
    if isinstance(err, KeyboardInterrupt) or isinstance(err.__context__, KeyboardInterrupt):
        return Interrupted(signal.SIGINT, None, None)
    if isinstance(err, SIGTERMException):
        return Interrupted(signal.SIGTERM, None, None)
    return err


def exit_status(err: BaseException) -> int:
    """The process exit status for an interrupted run (130 for Ctrl-C outside :class:`Interrupted`)."""
    return int(err.code) if isinstance(err, Interrupted) else 128 + signal.SIGINT


def interrupted_message(err: BaseException, run_dir: Path) -> str:
    """The log line after an interrupt: what was saved, and whether ``resume=true`` continues the run."""
    what = f"stopped by {err.signal_name}" if isinstance(err, Interrupted) else "interrupted"
    last = run_dir / "checkpoints" / "last.ckpt"
    if isinstance(err, Interrupted) and err.checkpoint is not None:
        where = f"checkpoint saved at step {err.step} ({err.checkpoint})"
    elif last.exists():
        where = f"no checkpoint at the interrupt; the last one is {last}"
    else:
        return f"{what}: {run_dir / 'metrics.json'} has status interrupted; no checkpoint was written (rerun anew)"
    how = "running the sweep command again continues the job" if in_multirun() else "resume=true continues the run"
    return f"{what}: {run_dir / 'metrics.json'} has status interrupted; {where}; {how}"


class StopOnSignal(Checkpoint):
    """Saves ``last.ckpt`` and stops at the step boundary after SIGINT/SIGTERM (see the module doc).

    A :class:`Checkpoint` so that Lightning runs it after the other checkpoint callbacks (list it after them).
    """

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = Path(checkpoint)
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def state_key(self) -> str:
        return "StopOnSignal"

    # ------------------------------------------------------------------ handlers
    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # the second signal: stop now
            raise Interrupted(signum, None, None)
        self.received = signum
        log.warning(
            "received %s: stopping after this training step with a checkpoint (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set in the main thread
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received = None
        self._install()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.received is None:
            return
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # the epoch's last step: its validation and checkpoint follow, the next step stops
        if 0 <= trainer.max_steps <= trainer.global_step:
            return  # no step left: the run completes
        self._save(trainer)
        raise Interrupted(self.received, self.checkpoint, trainer.global_step)

    def _save(self, trainer: L.Trainer) -> None:
        """``trainer.save_checkpoint`` beside ``last.ckpt``, then renamed over it (never a half-written last.ckpt)."""
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        partial = self.checkpoint.with_name(f".{self.checkpoint.name}.{os.getpid()}.partial")
        trainer.save_checkpoint(partial, weights_only=False)  # the whole training state: a resume needs it
        if trainer.is_global_zero:
            os.replace(partial, self.checkpoint)
        log.info("saved %s at step %d (epoch %d)", self.checkpoint, trainer.global_step, trainer.current_epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()
        if self.received is not None:
            log.warning(
                "%s arrived after the last training step: the run completes", signal.Signals(self.received).name
            )

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()
