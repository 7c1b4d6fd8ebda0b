"""autosome.org (DREAM 2022 rank 1, "NoGiNet"): EfficientNetV2-style CNN with soft-bin output.

Own graph (docs/menu.md §2): ``(B, 6, 150)`` -> first ``(B, 256, 150)`` -> core
``(B, 64, 150)`` -> final ``(B, 1, 18)`` bin logits; the soft-bin objective turns
them into the expected bin (soft-argmax) on the expression scale. All three blocks
use autosome's weight initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from src.blocks.base import Batch, Block, FinalBlock, SameConv1d, autosome_init


class AutosomeFirst(Block):
    """Stem: k=7 "same" conv without bias, BatchNorm, SiLU; length unchanged.

    Own graph: ``(B, 6, 150)`` -> ``(B, 256, 150)``; 11,264 parameters.
    """

    def __init__(self, in_channels: int, seq_len: int, out_channels: int = 256, kernel_size: int = 7) -> None:
        super().__init__(in_channels, seq_len)
        self.out_channels = out_channels
        self.stem = nn.Sequential(
            SameConv1d(in_channels, out_channels, kernel_size, bias=False),  # local motif detectors
            nn.BatchNorm1d(out_channels),
            nn.SiLU(),
        )
        autosome_init(self)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        return self.stem(x)


class SqueezeExcite(nn.Module):
    """Channel gating: mean over length -> Linear(e, hidden) -> SiLU -> Linear(hidden, e) -> sigmoid."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        # (B, e, L) -> (B, e) summary -> per-channel weights in (0, 1) rescale the input
        return x * self.gate(x.mean(dim=2)).unsqueeze(2)


def conv_bn_silu(cin: int, cout: int, kernel: int, groups: int = 1) -> nn.Sequential:
    """Bias-free "same" conv followed by BatchNorm and SiLU."""
    return nn.Sequential(SameConv1d(cin, cout, kernel, groups=groups, bias=False), nn.BatchNorm1d(cout), nn.SiLU())


class AutosomeStage(nn.Module):
    """One core stage: inverted residual with SE, concatenated with its input, resized to ``out``.

    ``(B, p, L)`` -> ``(B, s, L)`` with expansion ``e = 4 s``.
    """

    def __init__(self, cin: int, cout: int, expansion: int = 4, kernel_size: int = 7, resize_kernel: int = 7) -> None:
        super().__init__()
        e = expansion * cout
        self.inverted_residual = nn.Sequential(
            conv_bn_silu(cin, e, 1),  # expand p -> e
            conv_bn_silu(e, e, kernel_size, groups=e // 2),  # grouped conv, 2 filters per group
            SqueezeExcite(e, cin // 4),  # SE hidden width p / 4
            conv_bn_silu(e, cin, 1),  # project back to p
        )
        self.resize = conv_bn_silu(2 * cin, cout, resize_kernel)  # 2p (input ++ branch) -> s

    def forward(self, x: Tensor) -> Tensor:
        # DenseNet-style: concatenate the stage input with the branch instead of summing
        return self.resize(torch.cat([x, self.inverted_residual(x)], dim=1))


class AutosomeCore(Block):
    """Six EfficientNetV2-style stages with squeeze-excitation and concatenation residuals.

    Widths 256->128->128->64->64->64->64 (first stage input = ``in_channels``); no
    pooling or stride, so the length is unchanged.
    Own graph: ``(B, 256, 150)`` -> ``(B, 64, 150)``; 1,712,688 parameters
    (1,909,440 on DREAM-CNN's 320-channel input).
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        stage_widths: Sequence[int] = (128, 128, 64, 64, 64, 64),
        expansion: int = 4,
        kernel_size: int = 7,
    ) -> None:
        super().__init__(in_channels, seq_len)
        widths = [in_channels, *stage_widths]
        self.stages = nn.Sequential(
            *(AutosomeStage(widths[i], widths[i + 1], expansion, kernel_size) for i in range(len(stage_widths)))
        )
        self.out_channels = widths[-1]
        autosome_init(self)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        return self.stages(x)


class AutosomeFinal(FinalBlock):
    """Soft-bin head: 1x1 conv to ``n_targets x outputs_per_target`` logits, global average pool.

    Own graph: ``(B, 64, 150)`` -> ``(B, 1, 18)`` bin logits; 1,170 parameters. The
    objective (``final.objective``) turns the 18 logits into the expected bin index.
    """

    def __init__(self, in_channels: int, seq_len: int, n_targets: int = 1, outputs_per_target: int = 18) -> None:
        super().__init__(in_channels, seq_len, n_targets, outputs_per_target)
        self.head = nn.Conv1d(in_channels, n_targets * outputs_per_target, kernel_size=1)  # per-position logits
        autosome_init(self)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        logits = self.head(x).mean(dim=2)  # global average pool over length -> (B, T*K)
        return logits.view(-1, self.n_targets, self.outputs_per_target)

    def output_layers(self) -> list[nn.Module]:
        return [self.head]  # the 1x1 conv's bias is added at every position, so also to their average
