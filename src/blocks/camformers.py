"""Camformers (DREAM 2022 rank 4): residual CNN of 512-channel k=10 convolutions.

The original is a 2-D network on ``(B, 4, 110, 1)`` (NCHW, width 1) whose every
``(k, 1)`` Conv2d, BatchNorm2d and ``(10, 1)`` MaxPool2d acts along the height only;
here the width is squeezed away, so each becomes its 1-D counterpart with the same
weights and the same "same" padding (4 left / 5 right for k = 10).

Own graph: ``(B, 4, 110)`` -> first ``(B, 512, 110)`` -> core ``(B, 512, 26)`` ->
final ``(B, 1, 1)``; 22,016 + 13,114,880 + 3,474,177 = 16,611,073 parameters, L1 loss
on the raw target, PyTorch default initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from src.blocks.base import Batch, Block, FinalBlock, SameConv1d


class ConvBlock(nn.Module):
    """Conv k ("same", with bias) -> BN -> ReLU -> [MaxPool(pool, stride)] -> Dropout.

    ``(B, cin, L)`` -> ``(B, cout, L)``, or ``(B, cout, floor((L - pool) / stride) + 1)``
    with pooling.
    """

    def __init__(
        self, cin: int, cout: int, kernel_size: int, dropout: float, pool: int = 0, pool_stride: int = 0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [SameConv1d(cin, cout, kernel_size), nn.BatchNorm1d(cout), nn.ReLU()]
        if pool:
            layers.append(nn.MaxPool1d(pool, pool_stride or pool))  # the (10, 1) / (4, 1) 2-D pool on a width of 1
        layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class CamformersFirst(Block):
    """ConvBlock 1_0: k=10 "same" conv with bias -> BN -> ReLU -> Dropout; length unchanged.

    Own graph: ``(B, 4, 110)`` -> ``(B, 512, 110)``; 22,016 parameters (32,256 on 6 channels).
    """

    def __init__(
        self, in_channels: int, seq_len: int, out_channels: int = 512, kernel_size: int = 10, dropout: float = 0.3
    ) -> None:
        super().__init__(in_channels, seq_len)
        self.out_channels = int(out_channels)
        self.conv = ConvBlock(in_channels, out_channels, kernel_size, dropout)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        return self.conv(x)


class CamformersCore(Block):
    """Three residual pairs of ConvBlocks: ``i_1(i_0(x)) + i_0(x)`` for i = 1, 2, 3.

    Pair 1 starts from the block input: ``1_0`` is the first block's ConvBlock, so the
    core's first pair is ``x + 1_1(x)``; pairs 2 and 3 run ``i_0`` then add it to
    ``i_1(i_0)``. ``3_0`` max-pools (``pool``, stride ``pool_stride``) after its ReLU,
    and the skip of pair 3 is that pooled output. All convs keep the width ``channels``
    (the first conv of the core adapts ``in_channels``; a 1x1 projection shortcut adapts
    pair 1's skip when ``in_channels != channels``, absent in the original layout).

    Own graph: ``(B, 512, 110)`` -> ``(B, 512, 26)``; 13,114,880 parameters
    (5 ConvBlocks of 2,622,976).
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        channels: int = 512,
        kernel_size: int = 10,
        dropout: float = 0.3,
        pool: int = 10,
        pool_stride: int = 4,
    ) -> None:
        super().__init__(in_channels, seq_len)
        if pool and seq_len < pool:
            raise ValueError(f"CamformersCore: max-pool of {pool} needs seq_len >= {pool}, got {seq_len}")
        c = int(channels)
        self.out_channels = c
        # pair 1: skip from the core input (the original's ConvBlock 1_0 output)
        self.skip1: nn.Module = nn.Identity() if in_channels == c else nn.Conv1d(in_channels, c, 1, bias=False)
        self.conv1_1 = ConvBlock(in_channels, c, kernel_size, dropout)
        self.conv2_0 = ConvBlock(c, c, kernel_size, dropout)
        self.conv2_1 = ConvBlock(c, c, kernel_size, dropout)
        self.conv3_0 = ConvBlock(c, c, kernel_size, dropout, pool=pool, pool_stride=pool_stride)
        self.conv3_1 = ConvBlock(c, c, kernel_size, dropout)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        h = self.conv1_1(x) + self.skip1(x)  # residual pair 1
        h = self.conv2_0(h)
        h = self.conv2_1(h) + h  # residual pair 2
        h = self.conv3_0(h)  # (B, c, L) -> (B, c, floor((L - pool) / stride) + 1)
        return self.conv3_1(h) + h  # residual pair 3, skip from the pooled output


class CamformersFinal(FinalBlock):
    """MLP head: channel-major flatten -> Linear 256 -> ReLU -> Linear 256 -> ReLU -> Linear ``T * K``.

    The first Linear is sized from the composed ``(in_channels, seq_len)``. Own graph:
    ``(B, 512, 26)`` -> ``(B, 1, 1)``; 3,474,177 parameters (13,312 -> 256 -> 256 -> 1).
    The 2-D original flattens ``(C, H, 1)`` channel-major too.
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        n_targets: int = 1,
        outputs_per_target: int = 1,
        hidden: Sequence[int] = (256, 256),
    ) -> None:
        super().__init__(in_channels, seq_len, n_targets, outputs_per_target)
        layers: list[nn.Module] = [nn.Flatten()]  # (B, C, L) -> (B, C * L)
        width = in_channels * seq_len
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, n_targets * outputs_per_target))
        self.head = nn.Sequential(*layers)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        if x.shape[1:] != (self.in_channels, self.seq_len):
            raise ValueError(
                f"CamformersFinal built for (C, L) = ({self.in_channels}, {self.seq_len}) got input {tuple(x.shape)}"
            )
        return self.head(x).view(-1, self.n_targets, self.outputs_per_target)

    def output_layers(self) -> list[nn.Module]:
        return [self.head[-1]]  # the last Linear emits the prediction as it is returned
