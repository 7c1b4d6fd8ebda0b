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
_BYTES = np.zeros(256, dtype=np.uint64)
_BYTES[:5] = [ord(c) for c in "ACGTN"]


def sequence_hash(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """FNV-1a 64-bit hash of each row's sequence text, vectorised over rows."""
    h = np.full(len(codes), _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(codes.shape[1]):
            active = lengths > j
            col = _BYTES[codes[active, j]]
            h[active] = (h[active] ^ col) * _FNV_PRIME
    return h


def assign_folds(codes: np.ndarray, lengths: np.ndarray, n_folds: int = 10) -> np.ndarray:
    """Fold index in ``[0, n_folds)`` of every sequence."""
    assert not (codes[np.arange(codes.shape[1])[None, :] < lengths[:, None]] == PAD).any()
    return (sequence_hash(codes, lengths) % np.uint64(n_folds)).astype(np.int64)
