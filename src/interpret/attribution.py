"""Per-base scores ``(N, 4, L)`` of reads through a :class:`ReadModel`: ISM, saliency, IG, DeepLIFT/SHAP.

Every method returns two views: ``hypothetical`` (a score for each of the four bases at every position)
and ``observed`` (the score of the read's own base, zero elsewhere). Positions the model does not see
(cropped adapters, anything past a read's end) score zero in both.

* ``ism`` (tangermeme's ``saturation_mutagenesis``; all of a read's mutants go through the model in
  batches): hypothetical = prediction(read with that base) - prediction(read), zero at the read's
  own base; observed = minus the mean of the three substitutions (the effect of losing the base).
  Works for every block of the menu.
* ``saliency`` (captum): hypothetical = gradient; observed = gradient x input.
* ``integrated_gradients`` (captum, baseline all-N read): hypothetical = path-averaged gradient;
  observed = that x input (the attributions sum to prediction(read) - prediction(all N)).
* ``deep_lift_shap`` (tangermeme, dinucleotide-shuffled references): hypothetical attributions and
  their projection onto the read. Refused for LSTM/GRU blocks and for models whose attributions do
  not add up to the prediction differences (functional nonlinearities without a DeepLIFT rule, such
  as a final block's soft-argmax over expression bins).

The gradient methods need a gradient from prediction to bases: first blocks that turn the one-hot
into k-mer ids (NAD's 5-mer embedding, SYSU's 3-mer tokens) have none and are refused with a line
naming ``method=ism``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from src.errors import ConfigError, DataError
from src.interpret.read_model import PreparedReads, ReadModel

METHODS = ("ism", "saliency", "integrated_gradients", "deep_lift_shap")
GRADIENT_METHODS = METHODS[1:]
DLS_CHUNK = 32  # reads per DeepLIFT/SHAP call (each with all its references)


@dataclass
class Scores:
    """``hypothetical`` and ``observed`` ``(N, 4, L)`` float32 and the model's predictions ``(N, T)``."""

    hypothetical: np.ndarray
    observed: np.ndarray
    predictions: np.ndarray


def _mask(scores: Tensor, reads: PreparedReads) -> Tensor:
    """Zero at positions the model does not see."""
    return scores * torch.from_numpy(reads.seen)[:, None, :].to(scores.dtype)


def _rows(reads: PreparedReads, rows: slice) -> tuple[Tensor, Tensor]:
    return reads.onehot[rows], reads.layout[rows].float()


def predict_reads(model: ReadModel, reads: PreparedReads, batch_size: int = 512, progress: bool = False) -> np.ndarray:
    """Predictions ``(N, T)`` of the prepared reads (their own bases); a progress bar on stderr if asked."""
    from tqdm import tqdm

    out = []
    n = len(reads.sequences)
    with torch.inference_mode(), tqdm(total=n, unit="seq", desc="predict", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch_size):
            x, lay = _rows(reads, slice(start, start + batch_size))
            out.append(model(x.to(model.device_), lay.to(model.device_)).float().cpu())
            bar.update(len(x))
    return torch.cat(out).numpy()


def ism(model: ReadModel, reads: PreparedReads, target: int, batch_size: int, progress: bool) -> Scores:
    """In-silico saturation mutagenesis through tangermeme (every mutant one forward pass, batched)."""
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    # mutate only the span of positions the model sees (autosome drops the 17-nt adapter, nad keeps a window)
    seen = np.flatnonzero(reads.seen.any(axis=0))
    start, end = int(seen[0]), int(seen[-1]) + 1
    raw = saturation_mutagenesis(
        model,
        reads.onehot,
        args=(reads.layout.float(),),
        start=start,
        end=end,
        batch_size=batch_size,
        raw_outputs=True,
        device=model.device_,
        dtype=torch.float32,
        verbose=progress,
        fast=False,  # the fast path captures the model with torch.export; plain batched forwards are exact
    )
    y0 = raw.y0.float()  # (N, T)
    y_hat = y0[:, None, None, :].repeat(1, 4, reads.onehot.shape[2], 1)  # (N, 4, L, T): unmutated = y0
    y_hat[:, :, start:end] = raw.y_hat.float()
    hypothetical = _mask(y_hat[..., target] - y0[:, None, None, target], reads)
    hypothetical = hypothetical * (reads.onehot == 0)  # exactly zero at the read's own base
    n_alt = (reads.onehot == 0).sum(1, keepdim=True).clamp_min(1)
    observed = -reads.onehot * hypothetical.sum(1, keepdim=True) / n_alt
    return Scores(hypothetical.numpy(), observed.numpy(), y0.numpy())


def _has_recurrent(model: nn.Module) -> str | None:
    for name, sub in model.named_modules():
        if isinstance(sub, nn.RNNBase):
            return f"{name} ({type(sub).__name__})"
    return None


def check_gradient(model: ReadModel, reads: PreparedReads, method: str) -> None:
    """Refuse a gradient method when no gradient reaches the read's bases (k-mer id first blocks)."""
    x, lay = _rows(reads, slice(0, 1))
    x = x.to(model.device_).requires_grad_(True)
    y = model(x, lay.to(model.device_))
    grad = torch.autograd.grad(y.sum(), x, allow_unused=True)[0] if y.requires_grad else None
    if grad is None or not bool(grad.abs().sum() > 0):
        first = model.module.hparams.first["name"]
        raise ConfigError(
            f"method={method}: first block {first!r} turns the read into k-mer ids, so no gradient reaches "
            "the bases; use method=ism"
        )


def saliency(model: ReadModel, reads: PreparedReads, target: int, batch_size: int) -> Scores:
    from captum.attr import Saliency

    explainer = Saliency(model)
    grads = []
    for start in range(0, len(reads.sequences), batch_size):
        x, lay = _rows(reads, slice(start, start + batch_size))
        g = explainer.attribute(
            x.to(model.device_).requires_grad_(True),
            target=target,
            abs=False,
            additional_forward_args=(lay.to(model.device_),),
        )
        grads.append(g.detach().float().cpu())
    hypothetical = _mask(torch.cat(grads), reads)
    return Scores(hypothetical.numpy(), (hypothetical * reads.onehot).numpy(), predict_reads(model, reads))


def integrated_gradients(model: ReadModel, reads: PreparedReads, target: int, batch_size: int, steps: int) -> Scores:
    from captum.attr import IntegratedGradients

    explainer = IntegratedGradients(model, multiply_by_inputs=False)  # the path-averaged gradient itself
    grads = []
    per_batch = max(1, batch_size // steps)  # captum evaluates `steps` points per read
    for start in range(0, len(reads.sequences), per_batch):
        x, lay = _rows(reads, slice(start, start + per_batch))
        g = explainer.attribute(
            x.to(model.device_),
            baselines=torch.zeros_like(x, device=model.device_),
            target=target,
            n_steps=steps,
            additional_forward_args=(lay.to(model.device_),),
            internal_batch_size=batch_size,
        )
        grads.append(g.detach().float().cpu())
    hypothetical = _mask(torch.cat(grads), reads)
    return Scores(hypothetical.numpy(), (hypothetical * reads.onehot).numpy(), predict_reads(model, reads))


class _Target(nn.Module):
    """The model with one output column, for tangermeme's DeepLIFT hooks."""

    def __init__(self, model: ReadModel, target: int) -> None:
        super().__init__()
        self.model, self.target = model, target

    def forward(self, x: Tensor, layout: Tensor) -> Tensor:
        return self.model(x, layout)[:, self.target : self.target + 1]


def shuffled_references(reads: PreparedReads, n_shuffles: int, seed: int) -> Tensor:
    """``(N, n_shuffles, 4, L)`` dinucleotide shuffles of each read within its own length (tangermeme)."""
    from tangermeme.ersatz import dinucleotide_shuffle

    out = torch.zeros(len(reads.sequences), n_shuffles, *reads.onehot.shape[1:])
    for length in np.unique(reads.lengths):
        for row in np.flatnonzero(reads.lengths == length):
            try:
                shuffled = dinucleotide_shuffle(
                    reads.onehot[row : row + 1], end=int(length), n=n_shuffles, random_state=seed, allow_N=True
                )
            except ValueError:  # e.g. a repeat whose every shuffle is the read itself
                raise DataError(
                    "its dinucleotide shuffles are all the same sequence, no reference for DeepLIFT/SHAP "
                    "(use method=ism or method=integrated_gradients)",
                    *reads.where(int(row)),
                ) from None
            out[row] = shuffled[0].float()
    return out


def deep_lift_shap(
    model: ReadModel, reads: PreparedReads, target: int, batch_size: int, n_shuffles: int, seed: int
) -> Scores:
    from tangermeme.deep_lift_shap import deep_lift_shap as tm_deep_lift_shap

    recurrent = _has_recurrent(model.module)
    if recurrent:
        raise ConfigError(
            f"method=deep_lift_shap: the model has a recurrent layer {recurrent} that DeepLIFT has no rule for "
            "(its attributions would not add up to the prediction); use method=ism or method=integrated_gradients"
        )
    wrapped = _Target(model, target).eval()  # tangermeme restores the mode it finds
    references = shuffled_references(reads, n_shuffles, seed)
    parts = []
    # chunks of reads: a model DeepLIFT cannot handle is refused after the first chunk, not after all of them
    for start in range(0, len(reads.sequences), DLS_CHUNK):
        rows = slice(start, start + DLS_CHUNK)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            part = tm_deep_lift_shap(
                wrapped,
                reads.onehot[rows],
                args=(reads.layout[rows].float(),),
                batch_size=batch_size,
                references=references[rows],
                hypothetical=True,
                device=model.device_,
                warning_threshold=float("inf"),  # the relative check below decides
                only_warn=True,  # N and past-the-end positions are all-zero columns
            )
        _check_convergence(model, [str(w.message) for w in caught])
        parts.append(part.detach().float().cpu())
    hypothetical = _mask(torch.cat(parts), reads)
    return Scores(hypothetical.numpy(), (hypothetical * reads.onehot).numpy(), predict_reads(model, reads))


def _check_convergence(model: ReadModel, messages: list[str]) -> None:
    """Refuse DeepLIFT/SHAP when tangermeme found attributions that miss the output differences (over 1 %)."""
    broken = [m for m in messages if "no DeepLIFT rule" in m]
    if not broken:
        return
    off = broken[0].split("Convergence deltas are ")[-1].split(" of")[0]
    described = model.module.objective.describe()
    reason = (
        f"the objective's softmax over expression bins ({type(model.module.objective).__name__}) has no rule"
        if "soft-argmax" in described or "softmax" in described
        else "a nonlinearity called as a function (e.g. torch.relu in a residual block) has no DeepLIFT rule"
    )
    raise ConfigError(
        f"method=deep_lift_shap: attributions miss the prediction differences by {off} ({reason}); "
        "use method=ism or method=integrated_gradients"
    )


def attribute(
    model: ReadModel,
    reads: PreparedReads,
    method: str = "ism",
    target: int = 0,
    batch_size: int = 512,
    progress: bool = False,
    ig_steps: int = 32,
    n_shuffles: int = 20,
    seed: int = 0,
) -> Scores:
    """Scores of ``reads`` for output column ``target`` by ``method`` (one of :data:`METHODS`)."""
    if method not in METHODS:
        raise ConfigError(f"method: {method!r} is not one of {', '.join(METHODS)}, marginalize")
    n_targets = int(model.module.hparams.get("n_targets", 1))
    if not 0 <= int(target) < n_targets:
        raise ConfigError(f"target={target}: the model predicts {n_targets} target(s) (0-based index)")
    if method == "ism":
        return ism(model, reads, target, batch_size, progress)
    check_gradient(model, reads, method)
    if method == "saliency":
        return saliency(model, reads, target, batch_size)
    if method == "integrated_gradients":
        return integrated_gradients(model, reads, target, batch_size, ig_steps)
    return deep_lift_shap(model, reads, target, min(batch_size, 64), n_shuffles, seed)
