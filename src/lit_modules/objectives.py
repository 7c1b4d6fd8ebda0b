"""Objectives: loss, target transform and head-to-expression mapping, owned by the final config.

An objective is a small module (its target statistics are buffers, so they travel
in the checkpoint). The final block emits ``(B, T, K)`` with ``K =
objective.outputs_per_target``; the objective gives

* ``loss(head, y)``: a scalar from the head output and the raw targets ``(B, T)``;
* ``predict(head)``: ``(B, T)`` on the expression scale;
* ``fit(y_train)``: target statistics from the training split (standardisation).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class Objective(nn.Module):
    """Base class."""

    outputs_per_target: int = 1

    def fit(self, y_train: Tensor) -> None:
        """Learn target statistics from the training split (no-op by default)."""

    def loss(self, head: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def predict(self, head: Tensor) -> Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


class SoftBinObjective(Objective):
    """autosome.org's soft-label classification over expression bins.

    The measured value ``y`` is taken as Normal(y + shift, sd); bin 0 holds the mass
    below 1, bin k (1..K-2) the mass in [k, k + 1) and the last bin the mass from
    K - 1 upwards. Loss = KL(labels || softmax(logits)) averaged over the batch;
    prediction = expected bin index (soft-argmax).
    """

    def __init__(self, n_bins: int = 18, sd: float = 0.5, shift: float = 0.5) -> None:
        super().__init__()
        self.outputs_per_target = int(n_bins)
        self.sd = float(sd)
        self.shift = float(shift)
        inner = torch.arange(1, n_bins, dtype=torch.float32)  # edges 1 .. K-1
        inf = torch.tensor([float("inf")])
        self.register_buffer("edges", torch.cat([-inf, inner, inf]), persistent=False)
        self.register_buffer("bin_values", torch.arange(n_bins, dtype=torch.float32), persistent=False)

    def soft_labels(self, y: Tensor) -> Tensor:
        """``(..., )`` targets -> ``(..., K)`` bin probabilities (closed-form normal masses)."""
        z = (self.edges - (y.unsqueeze(-1).float() + self.shift)) / self.sd  # standardised edges per target
        cdf = torch.special.ndtr(z)
        return (cdf[..., 1:] - cdf[..., :-1]).clamp_min(0.0)

    def loss(self, head: Tensor, y: Tensor) -> Tensor:
        log_probs = F.log_softmax(head.float(), dim=-1).flatten(0, -2)
        labels = self.soft_labels(y).flatten(0, -2)
        return F.kl_div(log_probs, labels, reduction="batchmean")

    def predict(self, head: Tensor) -> Tensor:
        return (F.softmax(head.float(), dim=-1) * self.bin_values).sum(-1)

    def describe(self) -> str:
        return f"soft-bin KL over {self.outputs_per_target} bins (N(y+{self.shift}, {self.sd})), soft-argmax"


class RegressionObjective(Objective):
    """Direct regression: MSE, Huber or L1, optionally on the standardised target.

    With ``standardize`` the training split's mean and sd define ``(y - mean) / sd``
    for the loss, and predictions are mapped back to the expression scale.
    """

    def __init__(self, loss: str = "mse", standardize: bool = False, huber_delta: float = 1.0) -> None:
        super().__init__()
        if loss not in {"mse", "huber", "l1"}:
            raise ValueError(f"final.objective.loss must be one of mse, huber, l1 (got {loss!r})")
        self.loss_name = loss
        self.standardize = bool(standardize)
        self.huber_delta = float(huber_delta)
        self.outputs_per_target = 1
        self.register_buffer("mean", torch.zeros(1))
        self.register_buffer("std", torch.ones(1))

    def fit(self, y_train: Tensor) -> None:
        if self.standardize:
            y = y_train.double()
            self.mean = y.mean(0).float()
            self.std = y.std(0).clamp_min(1e-8).float()

    def loss(self, head: Tensor, y: Tensor) -> Tensor:
        pred = head[..., 0].float()  # (B, T): same shape as the target, no broadcasting
        target = (y.float() - self.mean) / self.std
        if self.loss_name == "mse":
            return F.mse_loss(pred, target)
        if self.loss_name == "huber":
            return F.huber_loss(pred, target, delta=self.huber_delta)
        return F.l1_loss(pred, target)

    def predict(self, head: Tensor) -> Tensor:
        return head[..., 0].float() * self.std + self.mean

    def describe(self) -> str:
        scale = "standardised target" if self.standardize else "raw target"
        return f"{self.loss_name} on the {scale}"
