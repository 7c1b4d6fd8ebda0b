"""Heads start where the data is: a fresh regression head on the raw target scale starts at the training mean.

A head such as ``final=resnet`` regresses the raw 0..17 expression with MSE; its output bias starts near 0,
so its first predictions sit about 11 units below the data and early training spends its steps (and, at a
high peak learning rate, its stability) on moving one number. :func:`start_head_at_targets` sets the bias of
each layer the final block names as its output (:meth:`src.blocks.base.FinalBlock.output_layers`, part of the
block contract) to the training targets' mean (per target) whenever the objective asks for it
(:meth:`src.lit_modules.objectives.Objective.initial_bias`: raw-scale regression only). Soft-bin heads,
standardised targets and knot-mapped targets are left unchanged, so their seeded runs are as before. It
applies only to fresh weights (not when resuming or initialising from a checkpoint).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


@torch.no_grad()
def start_head_at_targets(module: nn.Module, y_train: Tensor, fresh: bool = True) -> Tensor | None:
    """Set the bias of every output layer of ``module.net.final`` to ``module.objective.initial_bias(y_train)``.

    Returns the bias set; ``None`` (nothing changed) when the weights are not fresh, the objective keeps its
    head as built, or the block names no output layer (an output squashed by a sigmoid). A named layer whose
    bias does not hold one value per prediction output breaks the block contract: ``ValueError``.
    """
    if not fresh:
        return None
    bias = module.objective.initial_bias(y_train)
    if bias is None:
        return None
    final = module.net.final
    name = type(final).__name__
    layers = final.output_layers()
    if not layers:
        log.warning("%s names no output layer whose bias shifts its prediction: its head keeps its start", name)
        return None
    for layer in layers:
        if getattr(layer, "bias", None) is None or layer.bias.numel() != bias.numel():
            found = "no bias" if getattr(layer, "bias", None) is None else f"{layer.bias.numel()} bias values"
            raise ValueError(
                f"{name}.output_layers() names {type(layer).__name__} with {found}, but the prediction takes "
                f"{bias.numel()} (the contract: the layers whose bias is added directly to the prediction)"
            )
    for layer in layers:
        layer.bias.copy_(bias.reshape(layer.bias.shape).to(layer.bias))
    log.info("head bias starts at the training mean %s", ", ".join(f"{v:.3f}" for v in bias.tolist()))
    return bias
