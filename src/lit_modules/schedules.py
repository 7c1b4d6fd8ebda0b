"""Learning-rate schedules of the teams' recipes, all stepped once per optimizer step.

Every factory has the signature ``(optimizer, total_steps, lr, **options)`` so a
recipe's ``scheduler`` partial never needs per-recipe wiring; ``total_steps`` is
the real number of optimizer steps of the run (``trainer.estimated_stepping_batches``).
The exception is :func:`plateau`, which reacts to a validation metric and is
therefore stepped once per epoch (the module reads its ``monitor`` attribute).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau


def one_cycle(
    optimizer: Optimizer,
    total_steps: int,
    lr: float,
    div_factor: float = 25.0,
    pct_start: float = 0.3,
    final_div_factor: float = 1e4,
    cycle_momentum: bool = True,
) -> LRScheduler:
    """autosome.org: One-Cycle, start lr/div, peak ``lr`` after ``pct_start``, cosine down to start/final_div."""
    return OneCycleLR(
        optimizer,
        max_lr=lr,
        total_steps=max(int(total_steps), 2),
        div_factor=div_factor,
        pct_start=pct_start,
        final_div_factor=final_div_factor,
        cycle_momentum=cycle_momentum,
        anneal_strategy="cos",
    )


def cosine(optimizer: Optimizer, total_steps: int, lr: float, eta_min: float = 0.0) -> LRScheduler:
    """BHI: cosine annealing from ``lr`` to ``eta_min`` over the real number of steps."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["initial_lr"] = lr
    return CosineAnnealingLR(optimizer, T_max=max(int(total_steps), 1), eta_min=eta_min)


def inverse_sqrt(
    optimizer: Optimizer, total_steps: int, lr: float, warmup_steps: int = 12500, d_model: int | None = None
) -> LRScheduler:
    """Unlock_DNA (Noam): lr(step) = scale * min(step^-0.5, step * warmup^-1.5), step counted from 1.

    With ``d_model`` the scale is ``d_model^-0.5`` as in the original (the peak is then
    ``(d_model * warmup)^-0.5``); without it the schedule peaks at ``lr`` after warm-up.
    """
    warmup = max(int(warmup_steps), 1)
    scale = d_model**-0.5 if d_model else lr * math.sqrt(warmup)
    for group in optimizer.param_groups:
        group["lr"] = 1.0
        group["initial_lr"] = 1.0

    def factor(step: int) -> float:
        s = step + 1
        return scale * min(s**-0.5, s * warmup**-1.5)

    return LambdaLR(optimizer, factor)


def constant(optimizer: Optimizer, total_steps: int, lr: float) -> LRScheduler:
    """No schedule: ``lr`` throughout."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["initial_lr"] = lr
    return LambdaLR(optimizer, lambda step: 1.0)


def linear(optimizer: Optimizer, total_steps: int, lr: float, end_factor: float = 0.01) -> LRScheduler:
    """NAD: ``lr`` decays linearly to ``lr * end_factor`` at the last step (the team stepped it per epoch)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["initial_lr"] = lr
    last = max(int(total_steps) - 1, 1)
    return LambdaLR(optimizer, lambda step: 1.0 + (end_factor - 1.0) * min(step, last) / last)


def plateau(
    optimizer: Optimizer,
    total_steps: int,
    lr: float,
    monitor: str = "val/loss",
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    min_lr: float = 0.0,
) -> ReduceLROnPlateau:
    """Camformers / SYSU: multiply the lr by ``factor`` after ``patience`` epochs without improvement of ``monitor``.

    Stepped once per epoch on the logged ``monitor`` value (``mode`` min or max); the
    returned scheduler carries ``monitor`` for the module.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    scheduler = ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr)
    scheduler.monitor = monitor  # type: ignore[attr-defined]
    return scheduler
