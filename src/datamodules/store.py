"""Compact storage of a data set's sequences: one flat uint8 code array, no Python object per read.

Row ``i`` is ``codes[offsets[i] : offsets[i] + lengths[i]]`` (codes of :mod:`.encoding`,
upper and lower case alike). ``hashes`` holds each sequence's FNV-1a hash, from which
the split's folds are derived (:mod:`.split`). The arrays may be memory-mapped from
the binary cache (:mod:`.cache`). A store that knows its codes file (``codes_path``, a
cache entry's ``codes.bin``) gathers a batch's rows with positioned reads instead of
through the map: the codes then live once in the page cache, shared by every process,
and no process's RSS grows with the rows it has visited. (Through a map, recent kernels
map a whole large page-cache folio, up to 2 MB, for each row touched: one batch of
32 random reads added about 60 MB of RSS, and an epoch would map the whole file.)
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src.datamodules.encoding import PAD, N, encode_array
from src.datamodules.mapping import release_pages
from src.datamodules.split import sequence_hash

_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


@dataclass
class SequenceStore:
    """Ragged sequences as flat codes + offsets + lengths, with their split hashes."""

    codes: np.ndarray  # uint8 (total letters,)
    offsets: np.ndarray  # int64 (N,)
    lengths: np.ndarray  # int32 (N,)
    hashes: np.ndarray  # uint64 (N,)
    codes_path: Path | None = None  # the file ``codes`` is mapped from: rows are read from it
    _fd: int | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getstate__(self) -> dict:
        # a copy in another process (a spawned loader worker) opens the codes file itself
        return {**self.__dict__, "_fd": None}

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
        if self.codes_path is not None and len(index):
            out = np.full((len(index), width), PAD, dtype=np.uint8)
            out[inside] = self._read(self.offsets[index], lengths)  # row-major: the rows' letters in order
            return out, lengths
        src = np.where(inside, self.offsets[index][:, None] + cols, 0)
        out = np.where(inside, self.codes[src] if len(self.codes) else np.uint8(PAD), np.uint8(PAD)).astype(np.uint8)
        return out, lengths

    def _read(self, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The letters of the given rows, concatenated, read from ``codes_path`` (one read if contiguous)."""
        if self._fd is None:
            self._fd = os.open(self.codes_path, os.O_RDONLY)
            weakref.finalize(self, os.close, self._fd)
        total = int(lengths.sum())
        if (offsets[1:] == offsets[:-1] + lengths[:-1]).all():  # consecutive rows (evaluation): one read
            data = os.pread(self._fd, total, int(offsets[0]))
        else:
            data = b"".join(os.pread(self._fd, n, o) for o, n in zip(offsets.tolist(), lengths.tolist(), strict=True))
        if len(data) != total:
            raise OSError(f"{self.codes_path}: file ended early (read {len(data)} of {total} bytes)")
        return np.frombuffer(data, dtype=np.uint8)

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


def all_n_rows(store: SequenceStore, chunk: int = 1 << 16) -> np.ndarray:
    """Rows (int64, ascending) whose every letter is N (empty rows are not counted).

    One pass over the codes, ``chunk`` rows at a time (bounded temporaries); a memory-mapped
    store's pages are dropped after each chunk, so the pass leaves nothing resident.
    """
    found = []
    for lo in range(0, len(store), chunk):
        hi = min(lo + chunk, len(store))
        lengths = store.lengths[lo:hi]
        start, stop = int(store.offsets[lo]), int(store.offsets[hi - 1] + lengths[-1])
        # letters that are N, summed per row through a running count (robust to empty rows)
        running = np.concatenate(([0], np.cumsum(store.codes[start:stop] == N, dtype=np.int64)))
        local = store.offsets[lo:hi] - start
        counts = running[local + lengths] - running[local]
        found.append(lo + np.flatnonzero((counts == lengths) & (lengths > 0)))
        release_pages(store.codes)
    release_pages(store.offsets)
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, np.int64)
