"""Unlock_DNA (rank 3) data processing: both strands side by side, 6 x 200, masked-nucleotide training.

Per sequence (once): strip the adapters (17 nt 5', 13 nt 3'), centre-pad the rest
with N to ``half_len`` = 100 nt and append its reverse complement, so positions
0-99 are the given strand and 100-199 the reverse complement.
Per batch: one-hot over A, C, G, T, N, M (depth 6). In training with
``mask_ratio > 0`` each A/C/G/T position is masked with probability ``mask_ratio``
(N, i.e. the padding, never): the input shows M there, and the batch carries the
original ``tokens`` and the boolean ``mask`` for the final block's reconstruction
loss (``final=unlockdna``). The team used 5 %.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from src.datamodules.encoding import COMPLEMENT, N
from src.datamodules.processing.base import Processing
from src.errors import ConfigError

M = 5  # mask token; the team's table is A0 C1 G2 T3 N4 M5, the project's codes plus M
DEPTH = 6  # one-hot channels: A, C, G, T, N, M
_CHUNK = 1 << 16  # rows per vectorised step of prepare (bounds the index-matrix memory)


def center_offsets(lengths: np.ndarray, width: int) -> np.ndarray:
    """Left padding that Python's ``str.center(width)`` (and pandas ``pad(side="both")``) uses.

    With ``m = width - length`` padding letters the left side gets ``m // 2``, plus one
    more when both ``m`` and ``width`` are odd: for an even width (100) the extra letter
    of an odd margin goes to the right (3'), for an odd width to the left.
    """
    margin = width - lengths
    return margin // 2 + (margin & width & 1)


class UnlockdnaProcessing(Processing):
    """Unlock_DNA processing; ``x`` is ``(B, 6, seq_len)`` with ``seq_len = 2 * half_len``.

    Reads longer than ``half_len`` after removing the adapters are an error unless
    ``on_long`` is ``drop`` (what the team did) or ``trim``, which keeps the central
    ``half_len`` nt (an odd excess loses its extra base at the 3' end). A read with
    nothing left after the adapters is an error unless ``on_short`` is ``pad`` (all N)
    or ``drop``.
    """

    name = "unlockdna"
    train_views = 1
    rc_average = False  # the reverse complement is already part of every input

    def __init__(
        self,
        seq_len: int = 200,
        strip_5p: int = 17,
        strip_3p: int = 13,
        half_len: int = 100,
        mask_ratio: float = 0.0,
        on_long: str = "error",
        on_short: str = "error",
    ) -> None:
        if seq_len != 2 * half_len:
            raise ConfigError(f"processing.seq_len={seq_len} must be 2 * processing.half_len={half_len} (both strands)")
        if not 0.0 <= mask_ratio < 1.0:
            raise ConfigError(f"processing.mask_ratio={mask_ratio} must be in [0, 1)")
        if strip_5p < 0 or strip_3p < 0 or half_len < 1:
            raise ConfigError("processing.strip_5p/strip_3p must be >= 0 and processing.half_len >= 1")
        self.seq_len = int(seq_len)
        self.channels = DEPTH
        self.strip_5p = int(strip_5p)
        self.strip_3p = int(strip_3p)
        self.half_len = int(half_len)
        self.mask_ratio = float(mask_ratio)
        self.set_length_policy(on_long, on_short)

    def length_range(self) -> tuple[int, int]:
        adapters = self.strip_5p + self.strip_3p
        return adapters + 1, adapters + self.half_len

    def long_problem(self, length: int) -> str:
        return (
            f"sequence of {length} nt is {length - self.strip_5p - self.strip_3p} nt after removing the adapters, "
            f"longer than processing.half_len={self.half_len} (Unlock_DNA dropped such reads: on_long=drop)"
        )

    def short_problem(self, length: int) -> str:
        return (
            f"sequence of {length} nt is not longer than the {self.strip_5p} + {self.strip_3p} nt "
            "adapters unlockdna strips (processing.strip_5p / strip_3p)"
        )

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        lengths = np.asarray(lengths, dtype=np.int64)
        body = np.maximum(lengths - self.strip_5p - self.strip_3p, 0)  # random-region length (0: on_short=pad)
        out = np.empty((codes.shape[0], self.seq_len), dtype=np.uint8)
        for start in range(0, codes.shape[0], _CHUNK):
            stop = start + _CHUNK
            out[start:stop] = self._both_strands(codes[start:stop], body[start:stop])
        return {"codes": out}

    def _both_strands(self, codes: np.ndarray, body: np.ndarray) -> np.ndarray:
        """Centre-padded (or centre-cropped) random region followed by its reverse complement."""
        half = self.half_len
        keep = np.minimum(body, half)  # letters kept from each read
        crop = (body - keep) // 2  # letters cut from the 5' side when trimming (0 otherwise)
        left = center_offsets(keep, half)  # N letters on the 5' side
        offset = np.arange(half)[None, :] - left[:, None]  # output column -> letter index within the kept part
        inside = (offset >= 0) & (offset < keep[:, None])
        src = self.strip_5p + crop[:, None] + np.clip(offset, 0, None)
        src = np.minimum(src, codes.shape[1] - 1)  # keep padding columns' (unused) indices in range
        forward = np.where(inside, np.take_along_axis(codes, src, axis=1), np.uint8(N)).astype(np.uint8)
        reverse = COMPLEMENT[forward[:, ::-1]]  # reverse complement of the padded strand (N stays N)
        return np.concatenate([forward, reverse], axis=1)

    def make_batch(
        self,
        fields: dict[str, Tensor],
        y: Tensor,
        view: Tensor,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        tokens = fields["codes"].long()  # (B, L) codes 0..4
        batch: dict[str, Tensor] = {}
        shown = tokens
        if train and self.mask_ratio > 0:
            device = generator.device if generator is not None else tokens.device
            draw = torch.rand(tokens.shape, generator=generator, device=device).to(tokens.device)
            # Bernoulli(mask_ratio) per position, restricted to real bases (never N padding)
            mask = (draw < self.mask_ratio) & (tokens < N)
            shown = tokens.masked_fill(mask, M)
            batch = {"tokens": tokens, "mask": mask}
        x = F.one_hot(shown, DEPTH).transpose(1, 2).float()  # (B, 6, L)
        return {"x": x, "y": y, **batch}

    def reverse_complement(self, x: Tensor) -> Tensor:
        """Flip the A/C/G/T channels (complement) and the length axis; N and M only flip in length.

        An unmasked input (strand ++ its reverse complement) is its own reverse complement.
        """
        return torch.cat([x[:, :4].flip(1), x[:, 4:]], dim=1).flip(2)

    def describe(self) -> str:
        return f"{self.name}: {self.channels} x {self.seq_len} (2 x {self.half_len}, mask ratio {self.mask_ratio})"
