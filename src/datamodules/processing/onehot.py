"""Plain one-hot processing: 4 channels (A, C, G, T) at a fixed length."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from src.datamodules.encoding import PAD, one_hot, reverse_complement_onehot
from src.datamodules.processing.base import Processing
from src.errors import LengthPolicyError


class OneHotProcessing(Processing):
    """One-hot A/C/G/T, ``x`` is ``(B, 4, seq_len)``.

    Shorter sequences are zero-padded at the 3' end; longer ones are cut at the
    3' end when ``trim`` is true and rejected otherwise. N is ``n_value`` in all
    four channels. Evaluation averages forward and reverse complement when
    ``rc_average`` is true.
    """

    name = "onehot"

    def __init__(self, seq_len: int, trim: bool = True, n_value: float = 0.25, rc_average: bool = False) -> None:
        self.seq_len = int(seq_len)
        self.channels = 4
        self.trim = bool(trim)
        self.n_value = float(n_value)
        self.rc_average = bool(rc_average)

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        if not self.trim:
            long = np.flatnonzero(lengths > self.seq_len)
            if long.size:
                row = int(long[0])
                raise LengthPolicyError(
                    row, f"sequence of {lengths[row]} nt is longer than processing.seq_len={self.seq_len} (trim=false)"
                )
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
