"""Deterministic train/validation split decided on the raw sequences.

fold = FNV-1a 64-bit hash of the upper-case sequence mod ``n_folds``; the
validation split is ``fold == val_fold``. It depends only on the sequence text,
so every processing, encoding, machine and run sees the same split.
"""

from __future__ import annotations

import numpy as np

from src.datamodules.encoding import PAD

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
# code -> upper-case ASCII byte hashed (A C G T N), so the hash is the FNV-1a of the text
_TEXT = np.zeros(256, dtype=np.uint8)
_TEXT[:5] = [ord(c) for c in "ACGTN"]


def sequence_hash(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """FNV-1a 64-bit hash of each row's sequence text, vectorised over rows."""
    return text_hash(_TEXT[codes], lengths)


def text_hash(text: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """FNV-1a 64-bit hash of the first ``lengths[i]`` bytes of each row of a ``(N, width)`` uint8 matrix.

    Rows are visited longest first, so the rows still active at column ``j`` are a
    prefix: each column is one in-place operation on a contiguous slice, no masks.
    Bytes past a row's length are never read.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    uniform = bool((lengths == lengths[0]).all())
    order = np.arange(n) if uniform else np.argsort(-lengths, kind="stable")
    longest = int(lengths.max())
    active = np.searchsorted(-lengths[order], -np.arange(longest), side="left")  # rows with length > j
    columns = np.ascontiguousarray((text if uniform else text[order])[:, :longest].T)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    for j in range(longest):
        part = h[: int(active[j])]
        np.bitwise_xor(part, columns[j, : len(part)], out=part)
        np.multiply(part, _FNV_PRIME, out=part)
    if uniform:
        return h
    out = np.empty(n, dtype=np.uint64)
    out[order] = h
    return out


def assign_folds(codes: np.ndarray, lengths: np.ndarray, n_folds: int = 10) -> np.ndarray:
    """Fold index in ``[0, n_folds)`` of every sequence."""
    assert not (codes[np.arange(codes.shape[1])[None, :] < lengths[:, None]] == PAD).any()
    return (sequence_hash(codes, lengths) % np.uint64(n_folds)).astype(np.int64)
