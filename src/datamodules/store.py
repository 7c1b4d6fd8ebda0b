"""Compact storage of a data set's sequences: one flat uint8 code array, no Python object per read.

Row ``i`` is ``codes[offsets[i] : offsets[i] + lengths[i]]`` (codes of :mod:`.encoding`,
upper and lower case alike). ``hashes`` holds each sequence's FNV-1a hash, from which
the split's folds are derived (:mod:`.split`). The arrays may be memory-mapped from
the binary cache (:mod:`.cache`): :meth:`SequenceStore.rows` touches only the pages of
the rows it gathers, so a batch costs memory for its own rows only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from src.datamodules.encoding import PAD, encode_array
from src.datamodules.split import sequence_hash

_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


@dataclass
class SequenceStore:
    """Ragged sequences as flat codes + offsets + lengths, with their split hashes."""

    codes: np.ndarray  # uint8 (total letters,)
    offsets: np.ndarray  # int64 (N,)
    lengths: np.ndarray  # int32 (N,)
    hashes: np.ndarray  # uint64 (N,)

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def from_sequences(cls, sequences: Sequence[str]) -> SequenceStore:
        """Encode in-memory (already validated) sequences."""
        codes, lengths = encode_array(list(sequences))
        return cls.from_matrix(codes, lengths)

    @classmethod
    def from_matrix(cls, codes: np.ndarray, lengths: np.ndarray) -> SequenceStore:
        """From a PAD-filled ``(N, width)`` code matrix and the lengths of its rows."""
        lengths = np.asarray(lengths, dtype=np.int64)
        flat = codes[np.arange(codes.shape[1])[None, :] < lengths[:, None]]
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        return cls(flat, offsets, lengths.astype(np.int32), sequence_hash(codes, lengths))

    def rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """PAD-filled ``(B, max length)`` codes and int64 lengths of the rows ``index``."""
        index = np.asarray(index, dtype=np.int64)
        lengths = self.lengths[index].astype(np.int64)
        width = int(lengths.max()) if len(index) else 0
        cols = np.arange(width)[None, :]
        inside = cols < lengths[:, None]
        src = np.where(inside, self.offsets[index][:, None] + cols, 0)
        out = np.where(inside, self.codes[src] if len(self.codes) else np.uint8(PAD), np.uint8(PAD)).astype(np.uint8)
        return out, lengths

    def sequence(self, i: int) -> str:
        """Row ``i`` as upper-case text."""
        start = int(self.offsets[i])
        return _LETTERS[self.codes[start : start + int(self.lengths[i])]].tobytes().decode()


class StoredSequences(Sequence[str]):
    """A read-only list view of a store's sequences, decoded on access (upper case)."""

    def __init__(self, store: SequenceStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.store.sequence(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.store.sequence(i)

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self.store.sequence(i)


def duplicate_counts(hashes: np.ndarray) -> tuple[int, int, int]:
    """(sequences occurring more than once, extra copies, most copies of one) from the sequence hashes."""
    _, counts = np.unique(hashes, return_counts=True)
    dup = counts[counts > 1]
    return int(dup.size), int((dup - 1).sum()), int(dup.max()) if dup.size else 0


def first_rows_by_length(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct lengths and the first row of each, ordered by that first row."""
    values, first = np.unique(lengths, return_index=True)
    order = np.argsort(first, kind="stable")
    return values[order].astype(np.int64), first[order].astype(np.int64)
