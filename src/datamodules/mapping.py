"""Memory-mapped arrays: whether an array lies in a mapped file, and dropping its resident pages."""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np


def _mapping(arr: np.ndarray) -> mmap.mmap | None:
    base: Any = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, mmap.mmap) else None


def is_mapped(arr: np.ndarray) -> bool:
    """Whether ``arr`` lies in a memory-mapped file."""
    return _mapping(arr) is not None


def release_pages(arr: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped array from this process (no-op otherwise).

    The data stays in the file and the page cache; a later access maps the pages again. Used after
    a one-off pass over a whole array (folds from hashes, a split's targets) so they do not stay in RSS.
    """
    pages = _mapping(arr)
    if pages is not None and hasattr(pages, "madvise"):
        pages.madvise(mmap.MADV_DONTNEED)
