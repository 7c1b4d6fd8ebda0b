"""Plain one-hot processing: 4 channels (A, C, G, T) at a fixed length."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from src.datamodules.encoding import PAD, one_hot, reverse_complement_onehot
from src.datamodules.processing.base import Processing
from src.errors import ConfigError


class OneHotProcessing(Processing):
    """One-hot A/C/G/T, ``x`` is ``(B, 4, seq_len)``.

    Shorter sequences are zero-padded at the 3' end; a longer one is an error unless
    ``on_long`` is ``trim`` (cut at the 3' end) or ``drop``. N is ``n_value`` in all
    four channels. Evaluation averages forward and reverse complement when
    ``rc_average`` is true.
    """

    name = "onehot"

    def __init__(
        self,
        seq_len: int,
        n_value: float = 0.25,
        rc_average: bool = False,
        on_long: str = "error",
        on_short: str = "error",
        trim: bool | None = None,
    ) -> None:
        if int(seq_len) < 1:
            raise ConfigError(f"processing.seq_len={seq_len} must be >= 1")
        self.seq_len = int(seq_len)
        self.channels = 4
        self.n_value = float(n_value)
        self.rc_average = bool(rc_average)
        # ``trim`` is the key checkpoints saved before on_long existed used: true meant on_long=trim
        self.set_length_policy("trim" if trim else on_long, on_short)

    def length_range(self) -> tuple[int, int]:
        return 1, self.seq_len

    def long_problem(self, length: int) -> str:
        return f"sequence of {length} nt is longer than processing.seq_len={self.seq_len}"

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        n, width = codes.shape
        out = np.full((n, self.seq_len), PAD, dtype=np.uint8)
        keep = min(width, self.seq_len)
        out[:, :keep] = codes[:, :keep]
        return {"codes": out}

    def make_batch(
        self,
        fields: dict[str, Tensor],
        y: Tensor,
        view: Tensor,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        return {"x": one_hot(fields["codes"], self.n_value), "y": y}

    def reverse_complement(self, x: Tensor) -> Tensor:
        return reverse_complement_onehot(x)
