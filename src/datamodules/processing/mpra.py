"""MPRA / STARR-seq processing (lentiMPRA, DeepSTARR): one-hot plus a reverse-orientation channel.

Follows the organisers' third-stage benchmark inputs: the read is used at its real
length (``seq_len`` = the data set's, 230 nt lentiMPRA / 249 nt DeepSTARR) and a read of
any other length is an error naming ``processing.seq_len`` (nothing is cropped or
padded), or left out with ``on_long`` / ``on_short`` = ``drop``. Channels: A, C, G, T one-hot,
then 1 where the record's id marks the reverse
orientation (``reverse_marker``: ``_Reversed:`` in lentiMPRA ``seq_id``, ``_-_`` (minus
strand) in DeepSTARR ``ID``), else 0. ``x`` is ``(B, 5, seq_len)``.

N is 0.25 in all four base channels by default: an unknown base is the uniform
distribution over A/C/G/T, the encoding the DREAM models (autosome processing) were
trained with, so a yeast-trained first layer sees Ns the way it learnt them.
``n_value=0`` gives the all-zero encoding instead.

The reverse complement (test-time averaging, ``rc_average``, off by default) flips the
base channels and positions and the orientation flag.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from src.datamodules.encoding import one_hot, reverse_complement_onehot
from src.datamodules.processing.base import Processing


class MpraProcessing(Processing):
    """One-hot + orientation flag at the data set's exact length; ``x`` is ``(B, 5, seq_len)``."""

    name = "mpra"
    long_choices = ("error", "drop")  # never crops ...
    short_choices = ("error", "drop")  # ... nor pads

    def __init__(
        self,
        seq_len: int,
        reverse_marker: str | None = None,
        n_value: float = 0.25,
        rc_average: bool = False,
        on_long: str = "error",
        on_short: str = "error",
    ) -> None:
        if int(seq_len) < 1:
            raise ValueError(f"processing.seq_len must be >= 1 (got {seq_len})")
        self.set_length_policy(on_long, on_short)
        self.seq_len = int(seq_len)
        self.channels = 5
        self.reverse_marker = reverse_marker or None
        self.n_value = float(n_value)
        self.rc_average = bool(rc_average)

    def length_range(self) -> tuple[int, int]:
        return self.seq_len, self.seq_len

    def _problem(self, length: int) -> str:
        side = "longer" if length > self.seq_len else "shorter"
        return (
            f"sequence of {length} nt is {side} than processing.seq_len={self.seq_len} (this processing never "
            "crops or pads: set processing.seq_len or data.seq_len to the reads' length)"
        )

    def long_problem(self, length: int) -> str:
        return self._problem(length)

    def short_problem(self, length: int) -> str:
        return self._problem(length)

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        return {"codes": np.ascontiguousarray(codes[:, : self.seq_len])}

    def reverse_flags(self, ids: list[str] | None, n: int) -> np.ndarray:
        """1 where the id holds ``reverse_marker`` (all 0 without ids or marker)."""
        if ids is None or self.reverse_marker is None:
            return np.zeros(n, dtype=np.uint8)
        return np.fromiter((self.reverse_marker in i for i in ids), dtype=np.uint8, count=n)

    def id_fields(self, ids: list[str] | None, n: int) -> dict[str, np.ndarray]:
        return {"reverse": self.reverse_flags(ids, n)}

    @property
    def orientation_marker(self) -> str | None:
        return self.reverse_marker

    def orientation_fields(self, reverse: np.ndarray) -> dict[str, np.ndarray]:
        return {"reverse": np.asarray(reverse, dtype=np.uint8)}

    def make_batch(
        self,
        fields: dict[str, Tensor],
        y: Tensor,
        view: Tensor,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        onehot = one_hot(fields["codes"], self.n_value)
        b, _, length = onehot.shape
        reverse = fields.get("reverse")
        flag = torch.zeros(b, dtype=onehot.dtype) if reverse is None else reverse.to(onehot.dtype)
        return {"x": torch.cat([onehot, flag[:, None, None].expand(b, 1, length)], dim=1), "y": y}

    def reverse_complement(self, x: Tensor) -> Tensor:
        return torch.cat([reverse_complement_onehot(x[:, :4]), 1.0 - x[:, 4:5]], dim=1)

    def describe(self) -> str:
        marker = f"reverse flag from ids holding {self.reverse_marker!r}" if self.reverse_marker else "no reverse flag"
        return f"{self.name}: {self.channels} x {self.seq_len} (one-hot, N={self.n_value}, {marker})"
