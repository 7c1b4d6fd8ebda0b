"""The Prix Fixe seed reference set "ResNet" (docs/menu.md §9), with its bugs fixed.

Own graph on ``(B, 4, 150)``: first ``(B, 64, 150)`` -> core (ResNet-34 layout)
``(B, 512, 19)`` -> final ``(B, 1, 1)``. Fixes relative to the notebook: the core
accepts any ``in_channels`` (a projection shortcut adapts it), the final block
returns the prediction (not the target), and its MSE objective compares tensors
of equal shape (done by the objective).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from src.blocks.base import Batch, Block, FinalBlock, SameConv1d


class ResnetFirst(Block):
    """Stem: k=7 "same" conv with bias, BatchNorm, ReLU; length unchanged.

    Own graph: ``(B, 4, 150)`` -> ``(B, 64, 150)``; 1,984 parameters (2,880 on 6 channels).
    """

    def __init__(self, in_channels: int, seq_len: int, out_channels: int = 64, kernel_size: int = 7) -> None:
        super().__init__(in_channels, seq_len)
        self.out_channels = out_channels
        self.stem = nn.Sequential(
            SameConv1d(in_channels, out_channels, kernel_size), nn.BatchNorm1d(out_channels), nn.ReLU()
        )

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        return self.stem(x)


class ResidualBlock(nn.Module):
    """Two k=3 convs (with bias) + BN, added to the (projected) input, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.path = nn.Sequential(
            nn.Conv1d(cin, cout, 3, stride=stride, padding=1),  # may halve the length
            nn.BatchNorm1d(cout),
            nn.ReLU(),
            nn.Conv1d(cout, cout, 3, padding=1),
            nn.BatchNorm1d(cout),
        )
        # projection shortcut whenever the shape changes (stride or width)
        self.skip: nn.Module = (
            nn.Sequential(nn.Conv1d(cin, cout, 1, stride=stride), nn.BatchNorm1d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.path(x) + self.skip(x))


class ResnetCore(Block):
    """ResNet-34 layout: [3, 4, 6, 3] residual blocks, widths 64/128/256/512, strides 1/2/2/2.

    Own graph: ``(B, 64, 150)`` -> ``(B, 512, 19)`` (150 -> 150 -> 75 -> 38 -> 19);
    7,226,112 parameters for 64 input channels, whatever the length.
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        widths: Sequence[int] = (64, 128, 256, 512),
        depths: Sequence[int] = (3, 4, 6, 3),
        strides: Sequence[int] = (1, 2, 2, 2),
    ) -> None:
        super().__init__(in_channels, seq_len)
        layers: list[nn.Module] = []
        cin = in_channels
        for width, depth, stride in zip(widths, depths, strides, strict=True):
            # the first block of a layer changes width/length, the rest keep it
            layers.append(ResidualBlock(cin, width, stride))
            layers.extend(ResidualBlock(width, width) for _ in range(depth - 1))
            cin = width
        self.layers = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        return self.layers(x)


class ResnetFinal(FinalBlock):
    """Flatten (C x L) -> Linear(C L, C) -> ReLU -> Linear(C, T K).

    The notebook's "global average pool" is AvgPool1d(kernel_size=1), an identity, so
    the head is sized from the inferred length. Own graph: ``(B, 512, 19)`` ->
    ``(B, 1, 1)``; 4,981,761 parameters (3,671,041 for length 14).
    """

    def __init__(self, in_channels: int, seq_len: int, n_targets: int = 1, outputs_per_target: int = 1) -> None:
        super().__init__(in_channels, seq_len, n_targets, outputs_per_target)
        self.head = nn.Sequential(
            nn.Flatten(),  # channel-major flatten: (B, C, L) -> (B, C * L)
            nn.Linear(in_channels * seq_len, in_channels),
            nn.ReLU(),
            nn.Linear(in_channels, n_targets * outputs_per_target),
        )

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        return self.head(x).view(-1, self.n_targets, self.outputs_per_target)

    def output_layers(self) -> list[nn.Module]:
        return [self.head[-1]]  # the last Linear emits the prediction as it is returned
