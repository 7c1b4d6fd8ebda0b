"""autosome.org (rank 1) data processing: 6 x 150 input with strand and singleton flags.

Per sequence (once): drop the 17-nt left adapter, prepend the plasmid 5' of the
N80 site (which ends with that adapter) and keep the last ``seq_len`` nt, so a
110-nt read becomes 40 nt vector + adapter + random region + right adapter.
Reads of ``strip_5p + 1`` to ``strip_5p + seq_len`` nt fit; a longer read is an
error unless ``on_long`` is ``trim`` (keeps its last ``seq_len`` nt after the adapter)
or ``drop``; an adapter-only read is an error unless ``on_short`` is ``pad`` (the
window is all vector) or ``drop``.
Per batch: one-hot A/C/G/T (N = 0.25 everywhere, at train and test time alike),
channel 4 = 1 on the reverse-complement view, channel 5 = 1 when the measured
expression is an integer ("singleton"; always 0 at evaluation). Training sees
every sequence forward and reverse-complemented (``train_views = 2``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from src.datamodules.encoding import PAD, encode_str, one_hot, reverse_complement_onehot
from src.datamodules.plasmid import UPSTREAM
from src.datamodules.processing.base import Processing
from src.errors import ConfigError


class AutosomeProcessing(Processing):
    """autosome.org processing; ``x`` is ``(B, 6, seq_len)``."""

    name = "autosome"
    train_views = 2
    rc_average = True
    CHUNK = 65536

    def __init__(
        self,
        seq_len: int = 150,
        strip_5p: int = 17,
        n_value: float = 0.25,
        on_long: str = "error",
        on_short: str = "error",
    ) -> None:
        if not 1 <= seq_len <= len(UPSTREAM):
            raise ConfigError(f"processing.seq_len={seq_len} must be in [1, {len(UPSTREAM)}] (embedded vector flank)")
        if strip_5p < 0:
            raise ConfigError(f"processing.strip_5p={strip_5p} must be >= 0")
        self.set_length_policy(on_long, on_short)
        self.seq_len = int(seq_len)
        self.channels = 6
        self.strip_5p = int(strip_5p)
        self.n_value = float(n_value)
        self._vector = encode_str(UPSTREAM[-self.seq_len :])

    def length_range(self) -> tuple[int, int]:
        return self.strip_5p + 1, self.strip_5p + self.seq_len

    def long_problem(self, length: int) -> str:
        return (
            f"sequence of {length} nt is {length - self.strip_5p} nt after the {self.strip_5p}-nt adapter, "
            f"longer than processing.seq_len={self.seq_len}"
        )

    def short_problem(self, length: int) -> str:
        return f"sequence of {length} nt is not longer than the {self.strip_5p}-nt adapter autosome removes"

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        body_len = np.maximum(np.asarray(lengths, dtype=np.int64) - self.strip_5p, 0)  # on_short=pad: all vector
        out = np.empty((len(codes), self.seq_len), dtype=np.uint8)
        # chunks bound the index matrices' memory on the full challenge set (6.7M reads)
        for lo in range(0, len(codes), self.CHUNK):
            hi = min(lo + self.CHUNK, len(codes))
            body = codes[lo:hi, self.strip_5p :]
            # canvas = vector flank followed by the read minus its adapter (PAD-filled past its end)
            canvas = np.concatenate([np.broadcast_to(self._vector, (hi - lo, self.seq_len)), body], axis=1)
            # the last seq_len letters of vector+read start where the read body ends minus seq_len
            start = body_len[lo:hi, None] + np.arange(self.seq_len)[None, :]
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
