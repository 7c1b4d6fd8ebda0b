"""Objectives: loss, target transform and head-to-expression mapping, owned by the final config.

An objective is a small module (its target statistics are buffers, so they travel
in the checkpoint). The final block emits ``(B, T, K)`` with ``K =
objective.outputs_per_target``; the objective gives

* ``loss(head, y)``: a scalar from the head output and the raw targets ``(B, T)``;
* ``predict(head)``: ``(B, T)`` on the expression scale;
* ``fit(y_train)``: target statistics from the training split (standardisation,
  soft-bin range).

With several targets the loss is the sum of the per-target losses (each averaged
over the batch). Target statistics are persistent buffers whose shape follows the
checkpoint on loading (one value per target); a checkpoint written before a buffer
existed keeps the buffer's default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from src.errors import ConfigError


class Objective(nn.Module):
    """Base class."""

    outputs_per_target: int = 1

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:  # noqa: ANN001
        for name, buf in list(self._buffers.items()):
            if buf is None or name in self._non_persistent_buffers_set:
                continue
            key = prefix + name
            if key not in state_dict:
                state_dict[key] = buf.clone()  # older checkpoint: keep the default
            elif state_dict[key].shape != buf.shape:  # per-target statistics: take the checkpoint's shape
                self._buffers[name] = torch.empty(state_dict[key].shape, dtype=buf.dtype, device=buf.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def fit(self, y_train: Tensor) -> None:
        """Learn target statistics from the training split (no-op by default)."""

    def initial_bias(self, y_train: Tensor) -> Tensor | None:
        """Where a fresh head's output bias should start, per target; ``None``: leave the head alone (default)."""
        return None

    def loss(self, head: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def predict(self, head: Tensor) -> Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


class SoftBinObjective(Objective):
    """autosome.org's soft-label classification over expression bins.

    The measured value ``y`` (on the bin scale, see below) is taken as Normal(y + shift, sd);
    bin 0 holds the mass below 1, bin k (1..K-2) the mass in [k, k + 1) and the last bin the
    mass from K - 1 upwards. Loss = KL(labels || softmax(logits)) per target, averaged over
    the batch and summed over targets; prediction = expected bin index (soft-argmax).

    Bin scale: DREAM's expression is already 0..17 = the bin index. For other data
    (log2 enrichments, MPRA activities) ``rescale`` re-bins each target's training range
    onto the bins: ``y_bin = (y - low) / span * (K - 1)`` with ``low``/``span`` the training
    split's min and max - min, and predictions are mapped back. The data set declares which
    (``data.soft_bins``): ``fit`` always rescales; ``none`` (and ``auto``, a data set that
    declares nothing) keeps the scale, and a training target outside ``[0, K - 1]`` is then a
    ConfigError: one stray value must not silently re-bin the whole data set.
    Predictions stay within the training range.
    """

    def __init__(self, n_bins: int = 18, sd: float = 0.5, shift: float = 0.5, rescale: str = "auto") -> None:
        super().__init__()
        if rescale not in {"auto", "fit", "none"}:
            raise ValueError(f"final.objective.rescale must be one of auto, fit, none (got {rescale!r})")
        self.outputs_per_target = int(n_bins)
        self.sd = float(sd)
        self.shift = float(shift)
        self.rescale = rescale
        # y_bin = (y - low) / span * (K - 1); the defaults are the identity (DREAM's scale)
        self.register_buffer("low", torch.zeros(1))
        self.register_buffer("span", torch.full((1,), float(n_bins - 1)))
        inner = torch.arange(1, n_bins, dtype=torch.float32)  # edges 1 .. K-1
        inf = torch.tensor([float("inf")])
        self.register_buffer("edges", torch.cat([-inf, inner, inf]), persistent=False)
        self.register_buffer("bin_values", torch.arange(n_bins, dtype=torch.float32), persistent=False)

    def fit(self, y_train: Tensor) -> None:
        top = self.outputs_per_target - 1
        y = y_train.double()
        on_scale = bool(((y >= 0) & (y <= top)).all())
        if self.rescale != "fit" and not on_scale:  # one stray value must not re-bin (or pile into a bin) silently
            raise ConfigError(
                f"final.objective.rescale={self.rescale}: the training targets span [{y.min().item():.4g}, "
                f"{y.max().item():.4g}], outside the soft-bin scale 0..{top}; data.soft_bins=fit re-bins each "
                "target's training range, data.target_range finds the stray values"
            )
        if self.rescale != "fit":
            self.low = torch.zeros(1, device=self.low.device)
            self.span = torch.full((1,), float(top), device=self.span.device)
            return
        low, high = y.min(0).values, y.max(0).values
        self.low = low.float().to(self.low.device)
        self.span = (high - low).clamp_min(1e-8).float().to(self.span.device)

    @property
    def rescaled(self) -> bool:
        return bool((self.low != 0).any() or (self.span != self.outputs_per_target - 1).any())

    def to_bins(self, y: Tensor) -> Tensor:
        """Targets ``(B, T)`` -> the bin scale ``[0, K - 1]``."""
        return (y.float() - self.low) / self.span * (self.outputs_per_target - 1)

    def soft_labels(self, y: Tensor) -> Tensor:
        """``(..., )`` targets -> ``(..., K)`` bin probabilities (closed-form normal masses)."""
        z = (self.edges - (y.unsqueeze(-1).float() + self.shift)) / self.sd  # standardised edges per target
        cdf = torch.special.ndtr(z)
        return (cdf[..., 1:] - cdf[..., :-1]).clamp_min(0.0)

    def loss(self, head: Tensor, y: Tensor) -> Tensor:
        log_probs = F.log_softmax(head.float(), dim=-1).flatten(0, -2)
        labels = self.soft_labels(self.to_bins(y)).flatten(0, -2)
        # KL summed over bins and targets, averaged over the batch: the sum of the per-target losses
        return F.kl_div(log_probs, labels, reduction="sum") / head.shape[0]

    def predict(self, head: Tensor) -> Tensor:
        bins = (F.softmax(head.float(), dim=-1) * self.bin_values).sum(-1)
        return bins / (self.outputs_per_target - 1) * self.span + self.low

    def describe(self) -> str:
        text = f"soft-bin KL over {self.outputs_per_target} bins (N(y+{self.shift}, {self.sd})), soft-argmax"
        if self.rescaled:
            ranges = ", ".join(f"[{lo:.3g}, {lo + sp:.3g}]" for lo, sp in zip(self.low.tolist(), self.span.tolist()))
            text += f"; targets re-binned from training range {ranges}"
        return text


class RegressionObjective(Objective):
    """Direct regression: MSE, Huber or L1, optionally on a transformed target.

    With ``standardize`` the training split's mean and sd define ``(y - mean) / sd``
    for the loss. With ``target_knots`` (pairs ``[y, t]``, ``y`` increasing, ``t``
    increasing) the target is mapped piecewise-linearly through the knots (the end
    segments extend beyond them): ``[[0, 0], [22, 1]]`` is Metformin's ``y / 22``,
    ``[[0, 0], [8, 0.25], [17, 1]]`` NAD's compressed low range. In training,
    ``target_noise`` adds Normal(0, sd) to the transformed target, then clipped to
    ``target_clip`` when given (NAD: 0.05 and [0, 1]). Predictions are mapped back
    to the expression scale.
    """

    def __init__(
        self,
        loss: str = "mse",
        standardize: bool = False,
        huber_delta: float = 1.0,
        target_knots: Sequence[Sequence[float]] | None = None,
        target_noise: float = 0.0,
        target_clip: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if loss not in {"mse", "huber", "l1"}:
            raise ValueError(f"final.objective.loss must be one of mse, huber, l1 (got {loss!r})")
        self.loss_name = loss
        self.standardize = bool(standardize)
        self.huber_delta = float(huber_delta)
        self.outputs_per_target = 1
        self.register_buffer("mean", torch.zeros(1))
        self.register_buffer("std", torch.ones(1))
        self.knots = None
        if target_knots is not None:
            knots = torch.tensor([[float(a), float(b)] for a, b in target_knots], dtype=torch.float64)
            if standardize or len(knots) < 2 or not (knots.diff(dim=0) > 0).all():
                raise ValueError(
                    "final.objective.target_knots: needs >= 2 pairs [y, t] increasing in both y and t, "
                    "and standardize=false"
                )
            self.knots = knots
        if target_noise < 0 or (target_clip is not None and len(target_clip) != 2):
            raise ValueError("final.objective: target_noise must be >= 0 and target_clip a pair [low, high]")
        self.target_noise = float(target_noise)
        self.target_clip = None if target_clip is None else (float(target_clip[0]), float(target_clip[1]))

    @staticmethod
    def _piecewise(v: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
        """Piecewise-linear interpolation through ``(xs, ys)``, extrapolating the end segments."""
        xs, ys = xs.to(v.device, v.dtype), ys.to(v.device, v.dtype)
        i = (torch.searchsorted(xs.contiguous(), v.contiguous()) - 1).clamp(0, len(xs) - 2)
        slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
        return ys[i] + (v - xs[i]) * slope

    def transform(self, y: Tensor) -> Tensor:
        """Raw targets -> the loss scale (no noise)."""
        y = y.float()
        if self.knots is not None:
            return self._piecewise(y, self.knots[:, 0], self.knots[:, 1])
        return (y - self.mean) / self.std

    def fit(self, y_train: Tensor) -> None:
        if self.standardize:
            y = y_train.double()
            self.mean = y.mean(0).float()
            self.std = y.std(0).clamp_min(1e-8).float()

    def initial_bias(self, y_train: Tensor) -> Tensor | None:
        """The training targets' mean for a head on the raw target scale (neither standardised nor mapped
        through knots, e.g. 0..17): its first predictions then sit at the data, not 9 units below it.
        Standardised and knot-mapped targets start near 0 already (``None``)."""
        if self.standardize or self.knots is not None:
            return None
        return y_train.double().mean(0).float()

    def loss(self, head: Tensor, y: Tensor) -> Tensor:
        pred = head[..., 0].float()  # (B, T): same shape as the target, no broadcasting
        target = self.transform(y)
        if self.training and self.target_noise > 0:
            target = target + self.target_noise * torch.randn_like(target)  # label noise (NAD)
        if self.training and self.target_clip is not None:
            target = target.clamp(*self.target_clip)
        if self.loss_name == "mse":
            per = F.mse_loss(pred, target, reduction="none")
        elif self.loss_name == "huber":
            per = F.huber_loss(pred, target, delta=self.huber_delta, reduction="none")
        else:
            per = F.l1_loss(pred, target, reduction="none")
        return per.mean(0).sum()  # mean over the batch, sum over targets

    def predict(self, head: Tensor) -> Tensor:
        if self.knots is not None:
            return self._piecewise(head[..., 0].float(), self.knots[:, 1], self.knots[:, 0])
        return head[..., 0].float() * self.std + self.mean

    def describe(self) -> str:
        if self.knots is not None:
            scale = "target mapped through knots " + str([[float(a), float(b)] for a, b in self.knots.tolist()])
        else:
            scale = "standardised target" if self.standardize else "raw target"
        return f"{self.loss_name} on the {scale}"
