"""Compose first, core and final blocks into one network with inferred shapes.

The composer builds ``first(in_channels=C0, seq_len=L0)``, probes its output
``(C1, L1)`` with one dummy forward, builds ``core(C1, L1)``, probes ``(C2, L2)``
and builds ``final(C2, L2, n_targets, outputs_per_target)``. Nothing is wired by
hand per combination. A combination that cannot be built raises
:class:`CompositionError` naming the blocks and the shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from src.blocks.base import AuxLosses, Batch, BlockOutput, count_params, split_output
from src.errors import CompositionError
from src.utils.signatures import accepts_keyword


@dataclass(frozen=True)
class BlockReport:
    """One row of the composed graph."""

    role: str
    name: str
    cls: str
    in_shape: tuple[int, int]
    out_shape: tuple[int, ...]
    params: int


class PrixFixeNet(nn.Module):
    """first -> core -> final; returns the head output ``(B, T, K)`` and the auxiliary losses."""

    def __init__(self, first: nn.Module, core: nn.Module, final: nn.Module, report: list[BlockReport]) -> None:
        super().__init__()
        self.first = first
        self.core = core
        self.final = final
        self.report = report

    def forward(self, x: Tensor, batch: Batch | None = None) -> tuple[Tensor, AuxLosses]:
        aux: AuxLosses = {}
        for role in ("first", "core", "final"):
            block = getattr(self, role)
            if role == "final":
                x, block_aux = split_output(run_in_param_precision(block, x, batch))
            else:
                x, block_aux = split_output(block(x, batch))
            # prefix each auxiliary term with its block role: "final/recon"
            aux.update({f"{role}/{k}": v for k, v in block_aux.items()})
        return x, aux

    def describe(self) -> str:
        """The graph as a table; last line ``params: N``."""
        rows = [("block", "name", "class", "input (C, L)", "output", "params")]
        for r in self.report:
            rows.append((r.role, r.name, r.cls, str(r.in_shape), str(r.out_shape), f"{r.params:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"params: {count_params(self)}")
        return "\n".join(lines)


def run_in_param_precision(block: nn.Module, x: Tensor, batch: Batch | None) -> BlockOutput:
    """Run ``block`` with autocast off, on ``x`` cast to the block's parameter dtype.

    Under mixed precision (``bf16-mixed``/``16-mixed``) the parameters stay float32, so
    the final block (and the objective after it) computes in float32. A bf16 head output
    on the expression scale (about 10) is rounded to steps of 0.0625, which flattens the
    small prediction differences of a young model to a few values or to a constant.
    Without autocast (``32-true``, ``bf16-true``) this is the plain call: same numbers,
    no extra work, no host synchronisation.
    """
    device_type = x.device.type
    if not torch.is_autocast_enabled(device_type):
        return block(x, batch)
    param = next(block.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    with torch.autocast(device_type, enabled=False):
        return block(x.to(dtype), batch)


def _layout(factory: Callable, prefix: int, segments: tuple[int, ...] | None) -> dict:
    """The sequence layout the previous blocks declared, for a factory that accepts it."""
    extra: dict = {}
    if prefix and accepts_keyword(factory, "prefix_tokens"):
        extra["prefix_tokens"] = prefix
    if segments and accepts_keyword(factory, "segment_lengths"):
        extra["segment_lengths"] = segments
    return extra


@torch.no_grad()
def _probe(block: nn.Module, shape: tuple[int, int]) -> tuple[int, ...]:
    """Output shape (without batch) of one dummy forward in eval mode."""
    was_training = block.training
    block.eval()
    try:
        out, _ = split_output(block(torch.zeros(2, *shape)))
    finally:
        block.train(was_training)
    return tuple(out.shape[1:])


def _build(role: str, name: str, factory: Callable, shape: tuple[int, int], chain: str, **extra) -> nn.Module:
    channels, length = shape
    try:
        return factory(in_channels=channels, seq_len=length, **extra)
    except Exception as err:  # the block's own message says why; add where it sits
        raise CompositionError(
            f"{role} block {name!r} cannot take input (channels={channels}, seq_len={length}) in {chain}: {err}"
        ) from err


def compose(
    first: Callable[..., nn.Module],
    core: Callable[..., nn.Module],
    final: Callable[..., nn.Module],
    in_channels: int,
    seq_len: int,
    n_targets: int = 1,
    outputs_per_target: int = 1,
    names: tuple[str, str, str] = ("first", "core", "final"),
) -> PrixFixeNet:
    """Build the network from three block factories (Hydra partials) and the input shape."""
    chain = f"first={names[0]} core={names[1]} final={names[2]}"
    report: list[BlockReport] = []
    shape = (int(in_channels), int(seq_len))
    blocks: dict[str, nn.Module] = {}
    prefix = 0
    segments: tuple[int, ...] | None = None
    for role, name, factory in (("first", names[0], first), ("core", names[1], core)):
        extra = _layout(factory, prefix, segments)
        block = _build(role, name, factory, shape, chain, **extra)
        try:
            out = _probe(block, shape)
        except Exception as err:
            raise CompositionError(f"{role} block {name!r} fails on input {shape} in {chain}: {err}") from err
        if len(out) != 2:
            raise CompositionError(f"{role} block {name!r} must return (B, C, L), got (B, {out}) in {chain}")
        report.append(BlockReport(role, name, type(block).__name__, shape, out, count_params(block)))
        if hasattr(block, "prefix_tokens"):
            prefix = int(block.prefix_tokens)  # this block put prediction tokens in front
        elif out[1] != shape[1]:
            prefix = 0  # a block that changes the length (pooling, strides) dissolves the token layout
        if getattr(block, "segment_lengths", None):
            segments = tuple(int(n) for n in block.segment_lengths)  # independent sequences end to end
            if sum(segments) != out[1]:
                raise CompositionError(
                    f"{role} block {name!r} declares segments {segments} but returns length {out[1]}"
                )
        elif out[1] != shape[1]:
            segments = None
        blocks[role] = block
        shape = (int(out[0]), int(out[1]))
    extra = _layout(final, prefix, segments)
    if accepts_keyword(final, "prefix_tokens"):
        extra["prefix_tokens"] = prefix
    head = _build(
        "final", names[2], final, shape, chain, n_targets=n_targets, outputs_per_target=outputs_per_target, **extra
    )
    try:
        out = _probe(head, shape)
    except Exception as err:
        raise CompositionError(f"final block {names[2]!r} fails on input {shape} in {chain}: {err}") from err
    if out != (n_targets, outputs_per_target):
        raise CompositionError(
            f"final block {names[2]!r} returned (B, {out}) but the objective needs "
            f"(B, {n_targets}, {outputs_per_target})"
        )
    report.append(BlockReport("final", names[2], type(head).__name__, shape, out, count_params(head)))
    return PrixFixeNet(blocks["first"], blocks["core"], head, report)
