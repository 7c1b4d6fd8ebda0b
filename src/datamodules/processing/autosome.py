"""autosome.org (rank 1) data processing: 6 x 150 input with strand and singleton flags.

Per sequence (once): drop the 17-nt left adapter, prepend the plasmid 5' of the
N80 site (which ends with that adapter) and keep the last ``seq_len`` nt, so a
110-nt read becomes 40 nt vector + adapter + random region + right adapter.
Per batch: one-hot A/C/G/T (N = 0.25 everywhere, at train and test time alike),
channel 4 = 1 on the reverse-complement view, channel 5 = 1 when the measured
expression is an integer ("singleton"; always 0 at evaluation). Training sees
every sequence forward and reverse-complemented (``train_views = 2``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from src.datamodules.construct import UPSTREAM
from src.datamodules.encoding import PAD, encode_str, one_hot, reverse_complement_onehot
from src.datamodules.processing.base import Processing
from src.errors import LengthPolicyError


class AutosomeProcessing(Processing):
    """autosome.org processing; ``x`` is ``(B, 6, seq_len)``."""

    name = "autosome"
    train_views = 2
    rc_average = True
    CHUNK = 65536

    def __init__(self, seq_len: int = 150, strip_5p: int = 17, n_value: float = 0.25) -> None:
        if seq_len > len(UPSTREAM):
            raise ValueError(f"autosome processing: seq_len {seq_len} > embedded vector flank {len(UPSTREAM)}")
        self.seq_len = int(seq_len)
        self.channels = 6
        self.strip_5p = int(strip_5p)
        self.n_value = float(n_value)
        self._vector = encode_str(UPSTREAM[-self.seq_len :])

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        short = np.flatnonzero(lengths <= self.strip_5p)
        if short.size:
            row = int(short[0])
            raise LengthPolicyError(
                row, f"sequence of {lengths[row]} nt is not longer than the {self.strip_5p}-nt adapter autosome removes"
            )
        out = np.empty((len(codes), self.seq_len), dtype=np.uint8)
        # chunks bound the index matrices' memory on the full challenge set (6.7M reads)
        for lo in range(0, len(codes), self.CHUNK):
            hi = min(lo + self.CHUNK, len(codes))
            body = codes[lo:hi, self.strip_5p :]
            # canvas = vector flank followed by the read minus its adapter (PAD-filled past its end)
            canvas = np.concatenate([np.broadcast_to(self._vector, (hi - lo, self.seq_len)), body], axis=1)
            # the last seq_len letters of vector+read start where the read body ends minus seq_len
            start = (lengths[lo:hi] - self.strip_5p)[:, None] + np.arange(self.seq_len)[None, :]
            out[lo:hi] = np.take_along_axis(canvas, start, axis=1)
        assert not (out == PAD).any()
        return {"codes": out}

    def make_batch(
        self,
        fields: dict[str, Tensor],
        y: Tensor,
        view: Tensor,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        onehot = one_hot(fields["codes"], self.n_value)
        rev = view.bool()
        # reverse-complement view: flip channel and length axes of the one-hot
        onehot = torch.where(rev[:, None, None], reverse_complement_onehot(onehot), onehot)
        b, _, length = onehot.shape
        strand = rev.to(onehot.dtype)[:, None, None].expand(b, 1, length)
        if train:
            # singleton = every target of the sequence is an exact integer
            singleton = (y == torch.round(y)).all(dim=1).to(onehot.dtype)
        else:
            singleton = torch.zeros(b, dtype=onehot.dtype, device=onehot.device)
        flags = singleton[:, None, None].expand(b, 1, length)
        return {"x": torch.cat([onehot, strand, flags], dim=1), "y": y}

    def reverse_complement(self, x: Tensor) -> Tensor:
        bases = reverse_complement_onehot(x[:, :4])
        strand = 1.0 - x[:, 4:5]
        return torch.cat([bases, strand, x[:, 5:]], dim=1)
