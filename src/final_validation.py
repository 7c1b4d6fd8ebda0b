"""A run always validates before it ends, also when it stops inside an epoch.

Lightning validates at epoch ends; a run that ``trainer.max_steps`` stops inside an epoch would end
unvalidated (no metrics, no best checkpoint, Lightning's "could not find the monitored key").
:class:`ValidateAtStop` asks Lightning to stop at that step instead (``trainer.should_stop``), which
makes it validate there and then write the epoch-end checkpoints (best and last) as after any epoch,
so ``metrics.json`` holds the final step's metrics and the test split is scored with the best
checkpoint. A stop at an epoch's last step is left alone: that epoch's own validation is the final one.
"""

from __future__ import annotations

from typing import Any

import lightning as L


class ValidateAtStop(L.Callback):
    """Turns a ``max_steps`` stop inside an epoch into an early stop, which Lightning validates (module doc)."""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        last_step = 0 <= trainer.max_steps <= trainer.global_step
        if last_step and batch_idx + 1 < trainer.num_training_batches:
            trainer.should_stop = True
