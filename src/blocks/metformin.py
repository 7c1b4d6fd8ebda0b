"""Metformin-121 (DREAM 2022 rank 7): 8 stacked bidirectional GRUs + attention pooling (Keras original).

Own graph (input from ``processing=metformin``, one-hot right-aligned in 142
positions): ``(B, 4, 142)`` -> first ``(B, 128, 142)`` -> core ``(B, 128, 142)`` ->
final ``(B, 1, 1)``, a sigmoid output trained with MSE on ``y / 22``.
26,880 + 521,472 + 17,025 = 565,377 trainable parameters. Keras' summary says 565,633
because it also counts BatchNorm's moving mean and variance (2 x 128), which PyTorch
keeps as buffers.

The original used CuDNNGRU, whose gates carry two bias vectors (input and recurrent),
exactly PyTorch's ``nn.GRU`` layout. Weights start as in Keras: Glorot-uniform input
kernels, orthogonal recurrent kernels, zero biases.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from src.blocks.base import Batch, Block, FinalBlock


@torch.no_grad()
def keras_gru_init(gru: nn.GRU) -> None:
    """Keras GRU defaults per gate: Glorot-uniform input kernel, orthogonal recurrent kernel, zero biases."""
    for name, param in gru.named_parameters():
        if "bias" in name:
            param.zero_()
            continue
        for gate in param.chunk(3, dim=0):  # PyTorch stacks the reset, update and new gates
            if "weight_hh" in name:
                nn.init.orthogonal_(gate)
            else:
                nn.init.xavier_uniform_(gate)


class BiGRUStack(nn.Module):
    """``n_layers`` bidirectional GRUs, each returning both directions' states at every position.

    ``(B, L, cin)`` -> ``(B, L, 2 * hidden)``. Separate modules (not ``num_layers``) so
    every layer is a Keras ``Bidirectional(GRU)`` with its own init.
    """

    def __init__(self, cin: int, hidden: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.GRU(cin if i == 0 else 2 * hidden, hidden, batch_first=True, bidirectional=True) for i in range(n_layers)
        )
        for gru in self.layers:
            keras_gru_init(gru)

    def forward(self, x: Tensor) -> Tensor:
        for gru in self.layers:
            x, _ = gru(x)  # zero initial state; outputs (B, L, 2 * hidden), forward then backward
        return x


class MetforminFirst(Block):
    """One bidirectional GRU over positions, ``hidden`` per direction.

    Own graph: ``(B, 4, 142)`` -> ``(B, 128, 142)``; 26,880 parameters (29,184 on 6 channels).
    """

    def __init__(self, in_channels: int, seq_len: int, hidden: int = 64) -> None:
        super().__init__(in_channels, seq_len)
        self.out_channels = 2 * int(hidden)
        self.gru = BiGRUStack(in_channels, int(hidden), 1)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        # (B, C, L) -> (B, L, C): the GRU runs along the sequence -> (B, 2 hidden, L) again
        return self.gru(x.transpose(1, 2)).transpose(1, 2)


class MetforminCore(Block):
    """``n_layers`` stacked bidirectional GRUs returning sequences; length unchanged.

    Own graph: ``(B, 128, 142)`` -> ``(B, 128, 142)``; 521,472 parameters (7 x 74,496).
    """

    def __init__(self, in_channels: int, seq_len: int, hidden: int = 64, n_layers: int = 7) -> None:
        super().__init__(in_channels, seq_len)
        if n_layers < 1:
            raise ValueError(f"MetforminCore: n_layers={n_layers} must be >= 1")
        self.out_channels = 2 * int(hidden)
        self.grus = BiGRUStack(in_channels, int(hidden), int(n_layers))

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        return self.grus(x.transpose(1, 2)).transpose(1, 2)


class AttentionWithContext(nn.Module):
    """Attention pooling of Yang et al. (2016): ``u_t = tanh(W h_t + b)``, ``a = softmax_t(u_t . c)``.

    ``(B, L, d)`` -> ``(B, d)`` = sum over t of ``a_t h_t``; ``d^2 + 2 d`` parameters.
    """

    def __init__(self, d: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)  # W, b
        self.context = nn.Parameter(torch.empty(d))  # the learned context vector c
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        nn.init.uniform_(self.context, -((3.0 / d) ** 0.5), (3.0 / d) ** 0.5)  # Glorot for a (d, 1) kernel

    def forward(self, h: Tensor) -> Tensor:
        u = torch.tanh(self.proj(h))  # (B, L, d)
        weights = torch.softmax(u @ self.context, dim=1)  # (B, L): one weight per position
        return (weights.unsqueeze(-1) * h).sum(dim=1)


class MetforminFinal(FinalBlock):
    """Attention pooling -> BatchNorm -> LeakyReLU(0.3) -> Dropout(0.2) -> Linear d -> T K -> [sigmoid].

    ``sigmoid`` keeps the original's output in (0, 1), made for the ``y / 22`` target of
    ``final=metformin``'s objective; set it false for targets outside (0, 1). Any input
    length. Own graph: ``(B, 128, 142)`` -> ``(B, 1, 1)``; 17,025 trainable parameters
    (attention 16,640 + BatchNorm 256 + Dense 129) and BatchNorm's 256 running statistics.
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        n_targets: int = 1,
        outputs_per_target: int = 1,
        dropout: float = 0.2,
        negative_slope: float = 0.3,
        sigmoid: bool = True,
    ) -> None:
        super().__init__(in_channels, seq_len, n_targets, outputs_per_target)
        self.pool = AttentionWithContext(in_channels)
        self.head = nn.Sequential(
            nn.BatchNorm1d(in_channels, eps=1e-3, momentum=0.01),  # Keras BatchNormalization defaults
            nn.LeakyReLU(negative_slope),
            nn.Dropout(dropout),
            nn.Linear(in_channels, n_targets * outputs_per_target),
        )
        nn.init.xavier_uniform_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.sigmoid = bool(sigmoid)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        out = self.head(self.pool(x.transpose(1, 2)))  # pool over positions of (B, L, d)
        if self.sigmoid:
            out = torch.sigmoid(out)
        return out.view(-1, self.n_targets, self.outputs_per_target)

    def output_layers(self) -> list[nn.Module]:
        # with the sigmoid, the Dense bias is a logit offset, not a shift of the prediction: no layer qualifies
        return [] if self.sigmoid else [self.head[-1]]
