"""Heads start where the data is: a fresh regression head on the raw target scale starts at the training mean.

A head such as ``final=resnet`` regresses the raw 0..17 expression with MSE; its output bias starts near 0,
so its first predictions sit about 11 units below the data and early training spends its steps (and, at a
high peak learning rate, its stability) on moving one number. :func:`start_head_at_targets` sets the output
layer's bias to the training targets' mean (per target) whenever the objective asks for it
(:meth:`src.lit_modules.objectives.Objective.initial_bias`: raw-scale regression only). Soft-bin heads,
standardised targets and knot-mapped targets are left unchanged, so their seeded runs are as before. It
applies only to fresh weights (not when resuming or initialising from a checkpoint).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

OUTPUT_LAYERS = (nn.Linear, nn.Conv1d)


def output_layer(final: nn.Module, n_outputs: int) -> nn.Module | None:
    """The layer that emits the head's ``n_outputs`` values: the last Linear/Conv1d of that width with a bias,
    preferring those under a ``head`` submodule (a final block may also carry auxiliary heads, e.g. an MLM)."""
    matches = [
        (name, layer)
        for name, layer in final.named_modules()
        if isinstance(layer, OUTPUT_LAYERS) and layer.bias is not None and layer.bias.numel() == n_outputs
    ]
    in_head = [(n, m) for n, m in matches if n.split(".")[0] == "head"]
    chosen = in_head or matches
    return chosen[-1][1] if chosen else None


@torch.no_grad()
def start_head_at_targets(module: nn.Module, y_train: Tensor, fresh: bool = True) -> Tensor | None:
    """Set the output bias of ``module.net.final`` to ``module.objective.initial_bias(y_train)``; returns it.

    ``None`` (nothing changed) when the weights are not fresh, or the objective keeps its head as built.
    """
    if not fresh:
        return None
    bias = module.objective.initial_bias(y_train)
    if bias is None:
        return None
    layer = output_layer(module.net.final, int(bias.numel()))
    if layer is None:
        log.warning("no output layer with %d biases found in the final block: its bias keeps its start", bias.numel())
        return None
    layer.bias.copy_(bias.reshape(layer.bias.shape).to(layer.bias))
    log.info("head bias starts at the training mean %s", ", ".join(f"{v:.3f}" for v in bias.tolist()))
    return bias
