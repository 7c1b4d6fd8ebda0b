"""BHI (rank 2) data processing: 4 x 110 one-hot with random real-vector padding.

Per sequence (once): reads of 1 to ``seq_len`` nt are taken whole; a longer read is
an error unless ``on_long`` is ``trim`` (keep its first ``seq_len`` nt, BHI's 3' trim)
or ``drop``. Each read's kept length is remembered.
Per batch: a shorter read is padded to ``seq_len`` with real plasmid sequence, the
end of the 5' vector (``...CGATTCGAAC``) on the left and the start of the 3' vector
(``TCTTAATTAA...``) on the right. In training the placement is re-drawn every time
the sample is drawn, as in BHI's original dataset:

* probability 0.333: all padding on the right;
* otherwise probability 0.334 (overall 0.222): all padding on the left;
* otherwise (overall 0.444): split, ``left = pad // 2`` and ``right = pad - left``
  (right >= left; the original's split is this fixed one, not a random one).

At evaluation the placement is deterministic (``eval_pad``): ``"both"`` (the split
above, default), ``"right"`` or ``"left"``. One-hot is A/C/G/T with N = ``n_value``
(0, BHI) everywhere; the reverse complement flips channels and positions, and
evaluation averages both strands.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from src.datamodules.encoding import PAD, encode_str, one_hot, reverse_complement_onehot
from src.datamodules.plasmid import VECTOR_3P, VECTOR_5P
from src.datamodules.processing.base import Processing
from src.errors import ConfigError

P_RIGHT = 0.333  # first draw: pad on the right only
P_LEFT = 0.334  # second draw (when not right): pad on the left only; else split
EVAL_PADS = ("both", "right", "left")


class BhiProcessing(Processing):
    """BHI processing; ``x`` is ``(B, 4, seq_len)``, ``fields`` are ``codes`` and ``lengths``."""

    name = "bhi"
    rc_average = True

    def __init__(
        self,
        seq_len: int = 110,
        n_value: float = 0.0,
        eval_pad: str = "both",
        on_long: str = "error",
        on_short: str = "error",
    ) -> None:
        longest = min(len(VECTOR_5P), len(VECTOR_3P))
        if not 1 <= seq_len <= longest:
            raise ConfigError(f"processing.seq_len={seq_len} must be in [1, {longest}] (embedded vector flanks)")
        if eval_pad not in EVAL_PADS:
            raise ConfigError(f"processing.eval_pad must be one of {', '.join(EVAL_PADS)} (got {eval_pad!r})")
        self.set_length_policy(on_long, on_short)
        self.seq_len = int(seq_len)
        self.channels = 4
        self.n_value = float(n_value)
        self.eval_pad = eval_pad
        # the seq_len vector letters nearest the read on each side: 5' vector end, 3' vector start
        self._vector_5p = torch.from_numpy(encode_str(VECTOR_5P[-self.seq_len :]).copy())
        self._vector_3p = torch.from_numpy(encode_str(VECTOR_3P[: self.seq_len]).copy())

    def length_range(self) -> tuple[int, int]:
        return 1, self.seq_len

    def long_problem(self, length: int) -> str:
        return f"sequence of {length} nt is longer than processing.seq_len={self.seq_len}"

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        n, width = codes.shape
        # 3' trim: keep the first seq_len letters; PAD fills past the end of shorter reads
        out = np.full((n, self.seq_len), PAD, dtype=np.uint8)
        keep = min(width, self.seq_len)
        out[:, :keep] = codes[:, :keep]
        kept = np.minimum(lengths, self.seq_len).astype(np.int32)
        return {"codes": out, "lengths": kept}

    def left_pad(self, pad: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        """Number of 5'-vector letters placed left of each read, from its total ``pad`` ``(B,)``."""
        split = pad // 2  # the "both" placement: right = pad - pad // 2 >= left
        if not train:
            if self.eval_pad == "both":
                return split
            return torch.zeros_like(pad) if self.eval_pad == "right" else pad
        device = generator.device if generator is not None else pad.device
        u = torch.rand(2, pad.shape[0], generator=generator, device=device).to(pad.device)
        right_only = u[0] < P_RIGHT
        left_only = ~right_only & (u[1] < P_LEFT)
        left = torch.where(left_only, pad, split)
        return torch.where(right_only, torch.zeros_like(pad), left)

    def pad_codes(
        self, codes: Tensor, lengths: Tensor, train: bool, generator: torch.Generator | None = None
    ) -> Tensor:
        """``(B, seq_len)`` codes with each read placed in the window and vector letters around it."""
        lengths = lengths.long()
        left = self.left_pad(self.seq_len - lengths, train, generator)
        # window column j reads canvas position j - left, where the canvas is
        # 5' vector (negative positions) | read [0, length) | 3' vector [length, ...)
        pos = torch.arange(self.seq_len, device=codes.device)[None, :] - left[:, None]
        v5 = self._vector_5p.to(codes.device)
        v3 = self._vector_3p.to(codes.device)
        last = self.seq_len - 1
        read = codes.gather(1, pos.clamp(0, last))  # read letters (valid where 0 <= pos < length)
        up = v5[(pos + self.seq_len).clamp(0, last)]  # pos = -1 is the vector letter next to the read
        down = v3[(pos - lengths[:, None]).clamp(0, last)]  # pos = length is the first 3' vector letter
        return torch.where(pos < 0, up, torch.where(pos < lengths[:, None], read, down))

    def make_batch(
        self,
        fields: dict[str, Tensor],
        y: Tensor,
        view: Tensor,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        codes = self.pad_codes(fields["codes"], fields["lengths"], train, generator)
        return {"x": one_hot(codes, self.n_value), "y": y}

    def reverse_complement(self, x: Tensor) -> Tensor:
        return reverse_complement_onehot(x)

    def describe(self) -> str:
        return f"{self.name}: {self.channels} x {self.seq_len}, random vector padding (eval: {self.eval_pad})"
