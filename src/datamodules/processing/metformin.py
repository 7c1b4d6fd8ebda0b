"""Metformin-121 processing: one-hot reads right-aligned, zero padding on the 5' side."""

from __future__ import annotations

import numpy as np

from src.datamodules.encoding import PAD
from src.datamodules.processing.onehot import OneHotProcessing


class LeftPadOneHotProcessing(OneHotProcessing):
    """One-hot A/C/G/T, ``x`` is ``(B, 4, seq_len)`` with every read ending at the last position.

    Shorter reads are padded with zeros on the left (5'); a read longer than
    ``seq_len`` is an error (``on_long=error``, nothing is cut) or left out
    (``drop``). N is ``n_value`` in all four channels
    (the team: 1). The team's channel order T, C, G, A is a relabelling of the
    channels, equivalent for a learned first layer, so the common A, C, G, T is used.
    """

    name = "metformin"
    long_choices = ("error", "drop")  # right-aligns whole reads: nothing is cut

    def __init__(
        self,
        seq_len: int = 142,
        n_value: float = 1.0,
        rc_average: bool = False,
        on_long: str = "error",
        on_short: str = "error",
    ) -> None:
        super().__init__(seq_len, n_value, rc_average, on_long, on_short)

    def long_problem(self, length: int) -> str:
        return f"sequence of {length} nt is longer than processing.seq_len={self.seq_len} (nothing is cut)"

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        n, width = codes.shape
        out = np.full((n, self.seq_len), PAD, dtype=np.uint8)
        # column j of a read goes to column seq_len - length + j: right-aligned
        cols = np.arange(width)[None, :]
        valid = cols < lengths[:, None]
        dest = self.seq_len - lengths[:, None] + cols
        rows = np.broadcast_to(np.arange(n)[:, None], (n, width))
        out[rows[valid], dest[valid]] = codes[valid]
        return {"codes": out}
