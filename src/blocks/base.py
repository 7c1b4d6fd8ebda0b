"""The block contract shared by every team's first, core and final blocks.

Tensors flow as ``(batch, channels, seq_len)``. The composer
(:mod:`src.lit_modules.composer`) builds each block with the channel count and
length produced by the block before it, so no combination is wired by hand:

* first and core blocks: ``Block(in_channels=C, seq_len=L, **config)``;
* final blocks: ``FinalBlock(in_channels=C, seq_len=L, n_targets=T,
  outputs_per_target=K, **config)``; ``K`` comes from the objective (18 soft
  bins, 1 for plain regression) and the block returns ``(B, T, K)``.

``forward(x, batch)`` receives the activations and, read-only, the batch dict
(extra keys such as ``tokens`` or ``mask`` for auxiliary losses). It returns
either the output tensor or ``(output, aux_losses)`` where ``aux_losses`` maps
a name to a scalar tensor; the LightningModule weights, sums and logs them. A
value may instead be a function ``(objective, y) -> scalar``: the module calls it
with the final config's objective and the raw targets, so a term such as deep
supervision scores extra heads with the same loss and target transform as the
main prediction.

A block may also expose ``prefix_tokens`` (an int): the number of extra
positions it put in front of the sequence (Unlock_DNA's prediction tokens).
The composer passes it on to later blocks whose constructor accepts a
``prefix_tokens`` argument, as long as no block in between changes the length
(pooling or strides dissolve the token layout; later blocks then get 0).
Likewise ``segment_lengths`` (a tuple summing to the output length) says that the
output is several independent sequences laid end to end along the length axis
(SYSU's three reading frames, NAD's four pyramid levels); the composer passes it to
later blocks whose constructor accepts ``segment_lengths`` while the length is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

AuxLosses = dict[str, Tensor | Callable[..., Tensor]]
BlockOutput = Tensor | tuple[Tensor, AuxLosses]
Batch = Mapping[str, Tensor]


class Block(nn.Module):
    """Base class of first and core blocks: records the composed input shape."""

    def __init__(self, in_channels: int, seq_len: int) -> None:
        super().__init__()
        if in_channels < 1 or seq_len < 1:
            raise ValueError(f"{type(self).__name__}: in_channels={in_channels} and seq_len={seq_len} must be >= 1")
        self.in_channels = int(in_channels)
        self.seq_len = int(seq_len)

    def forward(self, x: Tensor, batch: Batch | None = None) -> BlockOutput:  # pragma: no cover - abstract
        raise NotImplementedError


class FinalBlock(Block):
    """Base class of final blocks: the prediction head, output ``(B, n_targets, outputs_per_target)``.

    Besides ``forward``, every final block implements :meth:`output_layers`: the layer(s) whose bias is
    added directly to the returned prediction (each bias holds ``n_targets * outputs_per_target`` values in
    the output's order), so that adding ``delta`` to each of their biases shifts the prediction by exactly
    ``delta``. Auxiliary heads (a masked-token or reconstruction head) are never among them. A fresh head on
    the raw target scale starts its prediction at the training mean through them (:mod:`src.head_bias`).
    """

    def __init__(self, in_channels: int, seq_len: int, n_targets: int = 1, outputs_per_target: int = 1) -> None:
        super().__init__(in_channels, seq_len)
        if n_targets < 1 or outputs_per_target < 1:
            raise ValueError(f"{type(self).__name__}: n_targets and outputs_per_target must be >= 1")
        self.n_targets = int(n_targets)
        self.outputs_per_target = int(outputs_per_target)

    def output_layers(self) -> list[nn.Module]:
        """The layer(s) whose bias is added directly to the prediction; empty when none is (a squashed output)."""
        raise NotImplementedError(f"{type(self).__name__} must implement output_layers() (the FinalBlock contract)")


def split_output(out: BlockOutput) -> tuple[Tensor, AuxLosses]:
    """Normalise a block's return value to ``(tensor, aux_losses)``."""
    if isinstance(out, tuple):
        x, aux = out
        return x, dict(aux)
    return out, {}


def resolve_aux(aux: AuxLosses, objective: object, y: Tensor) -> dict[str, Tensor]:
    """Auxiliary terms as scalars: a callable term is scored with ``(objective, y)``."""
    return {name: value(objective, y) if callable(value) else value for name, value in aux.items()}


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """Left/right zero padding of a stride-1 "same" conv (even kernels pad one more on the right)."""
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


class SameConv1d(nn.Conv1d):
    """``nn.Conv1d`` with "same" padding for odd and even kernels (k//2-1 left, k//2 right when even)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, **kwargs) -> None:
        dilation = kwargs.get("dilation", 1)
        left, right = same_padding(kernel_size, dilation)
        # symmetric padding is handled by Conv1d itself; asymmetric (even k) by an explicit pad
        self._asym = (left, right) if left != right else None
        super().__init__(in_channels, out_channels, kernel_size, padding=0 if self._asym else left, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if self._asym is not None:
            x = nn.functional.pad(x, self._asym)
        return super().forward(x)


def base_codes(x: Tensor) -> Tensor:
    """``(B, C >= 4, L)`` one-hot -> ``(B, L)`` long codes A 0, C 1, G 2, T 3, N 4.

    A position is a base when exactly one of the first four channels (A, C, G, T in
    every processing) exceeds 0.5; anything else (N at 0.25 or 1 in every channel,
    zero padding, a masked base) is N. Token-based blocks derive their tokens with it.
    """
    hot = x[:, :4] > 0.5
    n = torch.full(hot.shape[::2], 4, dtype=torch.long, device=x.device)
    return torch.where(hot.sum(1) == 1, hot.float().argmax(1), n)


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@torch.no_grad()
def autosome_init(module: nn.Module) -> None:
    """autosome.org weight initialisation (docs/menu.md §2), applied to every sub-module.

    Conv weights ~ N(0, sqrt(2 / (k * out_channels))); BN weight 1, bias 0;
    Linear weights ~ N(0, 0.001), bias 0.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            n = m.kernel_size[0] * m.out_channels
            m.weight.normal_(0.0, math.sqrt(2.0 / n))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm1d):
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0.0, 0.001)
            if m.bias is not None:
                m.bias.zero_()
