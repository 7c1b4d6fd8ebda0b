"""BHI (DREAM 2022 rank 2, "DeepGXP"): DanQ-like CNN -> BiLSTM -> CNN -> MLP.

Own graph (docs/menu.md §3): ``(B, 4, 110)`` -> first ``(B, 512, 110)`` -> core
``(B, 320, 110)`` -> final ``(B, 1, 1)``, 6,875,137 parameters in all, trained with a
Huber loss on the standardised target. The organisers' DREAM-CNN and DREAM-RNN
(docs/menu.md §10) reuse the first block as 6 -> 320 and the core on 320 channels.
BHI uses PyTorch's default initialisation, so no init hook is applied here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from src.blocks.base import Batch, Block, FinalBlock, SameConv1d


def _branch_width(out_channels: int, kernel_sizes: Sequence[int], who: str) -> int:
    """Channels per parallel conv branch; ``out_channels`` must split evenly over the kernels."""
    if not kernel_sizes:
        raise ValueError(f"{who}: kernel_sizes must not be empty")
    if out_channels % len(kernel_sizes):
        raise ValueError(
            f"{who}: out_channels={out_channels} does not split evenly over {len(kernel_sizes)} kernel branches"
        )
    return out_channels // len(kernel_sizes)


class ParallelConvs(nn.Module):
    """Parallel "same" conv branches (with bias) -> ReLU -> Dropout, concatenated along channels.

    ``(B, in_channels, L)`` -> ``(B, len(kernel_sizes) * width, L)``; branch order follows
    ``kernel_sizes``.
    """

    def __init__(self, in_channels: int, width: int, kernel_sizes: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                SameConv1d(in_channels, width, int(k)),  # motif detectors of one width, length kept
                nn.ReLU(),
                nn.Dropout(dropout),  # the original's MaxPool1d(1) between ReLU and Dropout is an identity
            )
            for k in kernel_sizes
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class BhiFirst(Block):
    """Stem: parallel k=9 / k=15 "same" convs with bias, each -> ReLU -> Dropout, concatenated.

    ``out_channels`` is split evenly across the branches; any input length.
    Own graph: ``(B, 4, 110)`` -> ``(B, 512, 110)``; 25,088 parameters
    (23,360 for DREAM-CNN/RNN's 6 -> 320).
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        out_channels: int = 512,
        kernel_sizes: Sequence[int] = (9, 15),
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_channels, seq_len)
        kernels = [int(k) for k in kernel_sizes]
        width = _branch_width(out_channels, kernels, type(self).__name__)
        self.out_channels = int(out_channels)
        self.convs = ParallelConvs(in_channels, width, kernels, dropout)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        return self.convs(x)


class BhiCore(Block):
    """Bidirectional LSTM over positions, then parallel k=9 / k=15 convs, Dropout(0.5).

    The LSTM (batch-first, zero initial state) reads ``(B, L, C)`` and returns both
    directions' hidden states at every position, ``2 * hidden`` channels; the conv
    branches (``out_channels / len(kernel_sizes)`` each, ReLU, Dropout(``dropout``))
    are concatenated and dropped out with ``out_dropout``. Any input length.
    Own graph: ``(B, 512, 110)`` -> ``(B, 320, 110)``; 4,592,960 parameters
    (4,101,440 on DREAM-RNN's 320-channel input).
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        hidden: int = 320,
        out_channels: int = 320,
        kernel_sizes: Sequence[int] = (9, 15),
        dropout: float = 0.2,
        out_dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels, seq_len)
        kernels = [int(k) for k in kernel_sizes]
        width = _branch_width(out_channels, kernels, type(self).__name__)
        self.out_channels = int(out_channels)
        self.lstm = nn.LSTM(in_channels, hidden, batch_first=True, bidirectional=True)
        self.convs = ParallelConvs(2 * hidden, width, kernels, dropout)
        self.out_dropout = nn.Dropout(out_dropout)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        # (B, C, L) -> (B, L, C): the LSTM runs along the sequence; no state passed = zero initial state
        states, _ = self.lstm(x.transpose(1, 2))
        # (B, L, 2 * hidden) -> (B, 2 * hidden, L): forward and backward states as channels
        x = states.transpose(1, 2)
        return self.out_dropout(self.convs(x))


class BhiFinal(FinalBlock):
    """MLP head: channel-major flatten -> Linear 64 -> ReLU -> Linear 64 -> ReLU -> Linear ``T * K``.

    The first Linear is sized from the composed ``(in_channels, seq_len)``, so the head
    needs a fixed input length. Own graph: ``(B, 320, 110)`` -> ``(B, 1, 1)``;
    2,257,089 parameters. The original flattens position-major; the capacity is the same.
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        n_targets: int = 1,
        outputs_per_target: int = 1,
        hidden: Sequence[int] = (64, 64),
    ) -> None:
        super().__init__(in_channels, seq_len, n_targets, outputs_per_target)
        layers: list[nn.Module] = [nn.Flatten()]  # (B, C, L) -> (B, C * L), channel-major
        width = in_channels * seq_len
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, n_targets * outputs_per_target))  # one output per target x slot
        self.head = nn.Sequential(*layers)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        if x.shape[1:] != (self.in_channels, self.seq_len):
            raise ValueError(
                f"BhiFinal built for (C, L) = ({self.in_channels}, {self.seq_len}) got input {tuple(x.shape)}"
            )
        return self.head(x).view(-1, self.n_targets, self.outputs_per_target)

    def output_layers(self) -> list[nn.Module]:
        return [self.head[-1]]  # the last Linear emits the prediction as it is returned
