"""Team data processing: from validated raw codes to model-ready batches.

A processing object has two stages:

* ``prepare(codes, lengths)`` runs once per data set on the uint8 code matrix
  (see :mod:`src.datamodules.encoding`) and returns a dict of per-sequence numpy
  arrays (at least ``"codes"``), e.g. fixed-length padded codes. It enforces the
  length policy by raising :class:`src.errors.LengthPolicyError` with the offending row.
* ``make_batch(fields, y, view, train, generator)`` runs per batch on tensors
  indexed from those arrays and returns the batch dict: ``"x"`` as float
  ``(B, channels, seq_len)``, ``"y"`` as float ``(B, n_targets)`` on the
  expression scale, plus any extra keys blocks may read. It is vectorised
  (no per-sample Python) and draws randomness only from ``generator``.

``id_fields(ids, n)`` adds per-sequence arrays taken from the record ids (the
MPRA/STARR processing's reverse-orientation flag); the default adds none.

``train_views`` > 1 multiplies the training set (autosome: forward and reverse
complement, view 0 and 1). ``reverse_complement(x)`` maps an encoded batch to
its reverse-complement encoding (used for test-time averaging and conjoined
losses); ``rc_average`` says whether evaluation averages both strands.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class Processing:
    """Base class; subclasses set ``name``, ``channels``, ``seq_len``."""

    name: str = "base"
    channels: int
    seq_len: int
    train_views: int = 1
    rc_average: bool = False

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def id_fields(self, ids: list[str] | None, n: int) -> dict[str, np.ndarray]:
        """Per-sequence arrays derived from the ids of ``n`` records (none by default)."""
        return {}

    def make_batch(
        self,
        fields: dict[str, Tensor],
        y: Tensor,
        view: Tensor,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def reverse_complement(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"processing {self.name!r} has no reverse-complement encoding")

    def describe(self) -> str:
        return f"{self.name}: {self.channels} x {self.seq_len}"
