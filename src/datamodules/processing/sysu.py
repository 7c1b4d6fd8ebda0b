"""SYSU-SAIL-2022 processing: each read embedded in its plasmid context, one-hot, optional base mask."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from src.datamodules.encoding import PAD, N, encode_str, one_hot, reverse_complement_onehot
from src.datamodules.plasmid import VECTOR_3P, VECTOR_5P
from src.datamodules.processing.base import Processing
from src.errors import ConfigError


class FlankedOneHotProcessing(Processing):
    """``flank`` nt of 5' vector + the whole read + ``flank`` nt of 3' vector, one-hot ``(B, 4, seq_len)``.

    The team embedded every read in ``flank`` = 150 nt of plasmid on each side (the
    read keeps its adapters, which continue the vector). Rows are N-padded on the 3'
    side up to ``seq_len`` (= 2 flank + the longest read, 442 for DREAM's 142 nt); a
    longer construct is an error. N is ``n_value`` in all four channels. With
    ``mask_ratio > 0``, training batches also carry ``mask`` (bool ``(B, seq_len)``, each
    A/C/G/T position with probability ``mask_ratio``) and ``tokens`` (the codes): the
    SYSU first block hides the k-mers starting at masked bases and the SYSU final
    block's ``mlm`` head predicts them; ``x`` itself is left unchanged.
    """

    name = "sysu"

    def __init__(
        self,
        seq_len: int = 442,
        flank: int = 150,
        n_value: float = 0.25,
        mask_ratio: float = 0.0,
        on_long: str = "error",
        on_short: str = "error",
    ) -> None:
        self.set_length_policy(on_long, on_short)
        if not 0 <= flank <= min(len(VECTOR_5P), len(VECTOR_3P)) or seq_len <= 2 * flank:
            raise ConfigError(
                f"processing.flank={flank} must be in [0, {min(len(VECTOR_5P), len(VECTOR_3P))}] "
                f"and processing.seq_len={seq_len} > 2 x flank"
            )
        if not 0.0 <= mask_ratio < 1.0:
            raise ConfigError(f"processing.mask_ratio={mask_ratio} must be in [0, 1)")
        self.seq_len = int(seq_len)
        self.flank = int(flank)
        self.channels = 4
        self.n_value = float(n_value)
        self.mask_ratio = float(mask_ratio)
        self._left = encode_str(VECTOR_5P[len(VECTOR_5P) - self.flank :])
        self._right = encode_str(VECTOR_3P[: self.flank])

    def length_range(self) -> tuple[int, int]:
        return 1, self.seq_len - 2 * self.flank

    def long_problem(self, length: int) -> str:
        return (
            f"sequence of {length} nt does not fit processing.seq_len={self.seq_len} with 2 x {self.flank} nt of vector"
        )

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        room = self.seq_len - 2 * self.flank
        lengths = np.minimum(lengths, room)  # on_long=trim: the first `room` nt of a longer read
        n, width = codes.shape
        out = np.full((n, self.seq_len), N, dtype=np.uint8)
        out[:, : self.flank] = self._left
        keep = min(width, room)
        out[:, self.flank : self.flank + keep] = codes[:, :keep]
        # the 3' vector starts right after each read: column flank + length + j holds vector letter j
        cols = np.arange(self.flank)[None, :] + self.flank + lengths[:, None]
        out[np.arange(n)[:, None], cols] = self._right[None, :]
        out[out == PAD] = N  # columns after the 3' vector
        return {"codes": out}

    def make_batch(
        self,
        fields: dict[str, Tensor],
        y: Tensor,
        view: Tensor,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        codes = fields["codes"]
        batch = {"x": one_hot(codes, self.n_value), "y": y}
        if train and self.mask_ratio > 0:
            device = generator.device if generator is not None else codes.device
            draw = torch.rand(codes.shape, generator=generator, device=device).to(codes.device)
            batch["mask"] = (draw < self.mask_ratio) & (codes.long() < N)  # real bases only
            batch["tokens"] = codes.long()
        return batch

    def reverse_complement(self, x: Tensor) -> Tensor:
        return reverse_complement_onehot(x)

    def describe(self) -> str:
        flanks = f"{self.flank} nt vector each side, mask ratio {self.mask_ratio}"
        return f"{self.name}: {self.channels} x {self.seq_len} ({flanks})"
