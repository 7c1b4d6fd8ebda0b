"""Compact sequence encoding: uint8 codes once, one-hot in vectorised batch code.

Codes: A=0, C=1, G=2, T=3, N=4; ``PAD`` (255) fills rows past a sequence's end.
The one-hot channel order A, C, G, T is complement-symmetric, so flipping the
channel axis of a one-hot tensor complements it, and flipping both axes gives the
reverse complement.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ALPHABET = "ACGTN"
A, C, G, T, N = range(5)
PAD = 255

# byte -> code lookup; 254 marks a letter outside ACGTN (upper or lower case accepted)
_LOOKUP = np.full(256, 254, dtype=np.uint8)
for _code, _letter in enumerate(ALPHABET):
    _LOOKUP[ord(_letter)] = _code
    _LOOKUP[ord(_letter.lower())] = _code
INVALID = 254

# code -> complement code (N stays N, PAD stays PAD)
COMPLEMENT = np.arange(256, dtype=np.uint8)
COMPLEMENT[[A, C, G, T]] = [T, G, C, A]


def encode_array(seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode sequences into a ``(N, Lmax)`` uint8 code matrix (PAD-filled) and their lengths.

    Invalid letters are encoded as ``INVALID``; callers validate with :func:`find_invalid`.
    """
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = int(lengths.max()) if len(seqs) else 0
    # one join + one frombuffer: no per-letter Python work
    flat = np.frombuffer("".join(seqs).encode("latin-1", errors="replace"), dtype=np.uint8)
    codes = np.full((len(seqs), width), PAD, dtype=np.uint8)
    if width:
        mask = np.arange(width)[None, :] < lengths[:, None]
        codes[mask] = _LOOKUP[flat]
    return codes, lengths


def find_invalid(codes: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first letter outside ACGTN, or None."""
    bad = np.argwhere(codes == INVALID)
    return None if bad.size == 0 else (int(bad[0, 0]), int(bad[0, 1]))


def encode_str(seq: str) -> np.ndarray:
    """Codes of a single sequence (no validation)."""
    return _LOOKUP[np.frombuffer(seq.encode("latin-1"), dtype=np.uint8)]


def decode(codes: np.ndarray) -> str:
    """Codes back to a string (PAD dropped)."""
    letters = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
    row = codes[codes != PAD]
    return letters[row].tobytes().decode()


def reverse_complement_codes(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverse complement of each row of a PAD-filled code matrix, left-aligned again."""
    n, width = codes.shape
    # column j of the result reads column (len-1-j) of the input
    src = lengths[:, None] - 1 - np.arange(width)[None, :]
    valid = src >= 0
    out = np.full_like(codes, PAD)
    rows = np.broadcast_to(np.arange(n)[:, None], (n, width))
    out[valid] = COMPLEMENT[codes[rows[valid], src[valid]]]
    return out


def one_hot(codes: Tensor, n_value: float = 0.25) -> Tensor:
    """``(B, L)`` uint8 codes -> ``(B, 4, L)`` float one-hot (A, C, G, T).

    N becomes ``n_value`` in all four channels; PAD (and anything else) becomes zeros.
    """
    codes = codes.long()
    eye = torch.zeros(256, 4, device=codes.device)
    eye[torch.arange(4), torch.arange(4)] = 1.0
    eye[N] = n_value
    # table lookup then move channels before length
    return eye[codes].transpose(1, 2).contiguous()


def reverse_complement_onehot(x: Tensor) -> Tensor:
    """Reverse complement of a ``(B, 4, L)`` A/C/G/T one-hot: flip channels and length."""
    return x.flip(1).flip(2)
