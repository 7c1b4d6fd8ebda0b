"""Vectorised reader of DREAM text (``seq<TAB>expression`` per line) over raw bytes, in chunks.

The file (plain or gzip) is read in blocks of whole lines. A block whose every line
has the plain shape ``letters<TAB>number`` is parsed with numpy alone: no Python
object per read. A block holding any other line (blank, extra column, bad letter,
spaces, ...) goes through the line-by-line rules of :func:`src.datamodules.readers.read_dream`,
so every error keeps its wording and cites its exact line. As before, column and
number errors are raised in file order, then an empty sequence, then a letter
outside ACGTN (the first in the file). Files with bytes beyond ASCII, lone carriage
returns or other line-separator characters are left to the line-by-line reader
(:class:`Fallback`), whose line numbering they would change.

Each block's arrays are appended to files in a folder (:class:`ArrayWriter`), so the
memory held while reading is one block, whatever the file's size.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from src.datamodules.encoding import _LOOKUP, INVALID, PAD
from src.datamodules.split import _TEXT, text_hash
from src.datamodules.store import SequenceStore
from src.errors import DataError

BLOCK_BYTES = 1 << 24  # 16 MiB of text per vectorised step
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
ARRAYS = {  # file name -> dtype of the arrays a scan writes
    "codes": np.uint8,
    "offsets": np.int64,
    "lengths": np.int32,
    "hashes": np.uint64,
    "targets": np.float32,
    "lines": np.int64,
}

_IS_LETTER = np.zeros(256, dtype=bool)
_IS_LETTER[list(b"ACGTNacgtn")] = True
_NUMBER_BYTES = np.zeros(256, dtype=bool)
_NUMBER_BYTES[list(b"0123456789.-+eE")] = True
# bytes that str.splitlines() treats as line breaks besides \n and \r\n (ASCII part)
_ODD = np.zeros(256, dtype=bool)
_ODD[[0x0B, 0x0C, 0x1C, 0x1D, 0x1E]] = True
_ODD[0x80:] = True
_SPACE = np.zeros(256, dtype=bool)
_SPACE[list(b" \t\n\r\x0b\x0c")] = True


_LOOKUP_PAD = np.where(_IS_LETTER, _LOOKUP, PAD).astype(np.uint8)  # letters -> codes, every other byte -> PAD


def _rows_view(buf: np.ndarray, starts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """``(len(starts), max width)`` bytes from each start (a copy via a strided window; zeros past the end)."""
    width = int(widths.max())
    padded = np.concatenate((buf, np.zeros(width, dtype=np.uint8)))
    return np.lib.stride_tricks.as_strided(padded, shape=(buf.size, width), strides=(1, 1))[starts]


class Fallback(Exception):
    """The file needs the line-by-line reader (bytes beyond ASCII or unusual line breaks)."""


def check_file(path: str | Path) -> Path:
    """The path of an existing regular file, else a DataError."""
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", p)
    if p.is_dir():
        raise DataError("is a folder, expected a file", p)
    return p


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_binary(path: str | Path) -> BinaryIO:
    """The file's bytes, decompressed when it is gzip (recognised by content, not by name)."""
    p = check_file(path)
    return gzip.open(p, "rb") if is_gzip(p) else open(p, "rb")  # type: ignore[return-value]


def read_bytes(path: str | Path) -> bytes:
    """All of a file's bytes (gzip decompressed); an unreadable gzip stream is a DataError."""
    with open_binary(path) as handle:
        return gzip_safe(handle.read, path)


def gzip_safe(read: Callable[[], bytes], path: str | Path) -> bytes:
    try:
        return read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"not a readable gzip file ({err})", path) from None


def blocks(path: str | Path, size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Whole-line blocks of the decompressed text (the last one ends with a newline added if missing)."""
    with open_binary(path) as handle:
        carry = b""
        while True:
            data = gzip_safe(lambda: handle.read(size), path)
            if not data:
                break
            data = carry + data
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if cut:
                yield data[:cut]
        if carry:
            yield carry + b"\n"


class ArrayWriter:
    """Appends each array to ``<folder>/<name>.bin``, with a running CRC-32 per file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = {name: open(folder / f"{name}.bin", "wb") for name in ARRAYS}  # noqa: SIM115 (see close)
        self.crc = dict.fromkeys(ARRAYS, 0)

    def append(self, **arrays: np.ndarray) -> None:
        for name, arr in arrays.items():
            data = memoryview(np.ascontiguousarray(arr, dtype=ARRAYS[name])).cast("B")
            self.files[name].write(data)
            self.crc[name] = zlib.crc32(data, self.crc[name])

    def close(self) -> None:
        for handle in self.files.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()


class _Scan:
    """State of one scan: counts, the first empty / bad-letter record, distinct lengths."""

    def __init__(self, path: str | Path, writer: ArrayWriter, line_rules: Callable) -> None:
        self.path = path
        self.writer = writer
        self.line_rules = line_rules
        self.n = 0  # records so far
        self.letters = 0  # codes so far
        self.lines = 0  # lines so far
        self.nonspace = False
        self.first_empty: int | None = None  # line of the first empty sequence
        self.first_bad: tuple[int, str, int] | None = None  # (line, letter, 1-based position)
        self.length_first: dict[int, int] = {}

    def block(self, chunk: bytes, first: bool) -> None:
        buf = np.frombuffer(chunk, dtype=np.uint8)
        self.nonspace = self.nonspace or not _SPACE[buf].all()
        if first and chunk.startswith(BOM):
            buf = buf[len(BOM) :]
        if _ODD[buf].any():
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError as err:
                line = self.lines + chunk[: err.start].count(b"\n") + 1
                raise DataError(f"not UTF-8 text (byte 0x{chunk[err.start]:02x})", self.path, line) from None
            raise Fallback
        nl = np.flatnonzero(buf == 10)
        cr = np.flatnonzero(buf == 13)
        if cr.size and (buf[np.minimum(cr + 1, buf.size - 1)] != 10).any():
            raise Fallback  # a lone carriage return is a line break of its own for str.splitlines()
        parsed = self._fast(buf, nl)
        if parsed is None:
            parsed = self._slow(buf.tobytes(), nl.size)
        self._add(*parsed)
        self.lines += nl.size

    def _fast(self, buf: np.ndarray, nl: np.ndarray):
        """Arrays of a block whose every line is ``letters<TAB>number``; None when one is not."""
        starts = np.concatenate(([0], nl[:-1] + 1))
        ends = nl - (buf[nl - 1] == 13)
        tabs = np.flatnonzero(buf == 9)
        first_tab = np.searchsorted(tabs, starts)
        if not np.array_equal(np.searchsorted(tabs, ends) - first_tab, np.ones_like(first_tab)):
            return None  # blank lines, missing or extra columns
        tab = tabs[first_tab]
        seq_len = tab - starts
        num_len = ends - tab - 1
        if seq_len.min() < 1 or num_len.min() < 1:
            return None
        targets = self._numbers(buf, tab + 1, num_len)
        if targets is None:
            return None
        # number fields hold no letters (checked above) and the rest is tabs and line ends, so the letters of
        # the block are exactly the sequences' bytes when their count is the sequences' total length
        all_codes = _LOOKUP_PAD[buf]
        codes = all_codes[all_codes != PAD]
        if codes.size != int(seq_len.sum()):
            return None
        lines = self.lines + 1 + np.arange(nl.size, dtype=np.int64)
        return codes, seq_len.astype(np.int64), targets, lines, None, _rows_view(buf & 0xDF, starts, seq_len)

    @staticmethod
    def _numbers(buf: np.ndarray, start: np.ndarray, width: np.ndarray) -> np.ndarray | None:
        """float32 values of the number fields, parsed as ``float()`` does; None if one is not a finite number."""
        w = int(width.max())
        if w > 64:
            return None
        m = _rows_view(buf, start, width).copy()
        inside = np.arange(w)[None, :] < width[:, None]
        if (inside & ~_NUMBER_BYTES[m]).any():
            return None  # letters, spaces, ... in a number: the line-by-line rules say what is wrong
        m[~inside] = 0
        try:
            values = m.view(f"S{w}").ravel().astype(np.float64)
        except ValueError:
            return None
        if not np.isfinite(values).all():
            return None
        return values.astype(np.float32)

    def _slow(self, chunk: bytes, n_lines: int):
        """The line-by-line rules on one block (errors raised with their file line)."""
        text = chunk.decode("utf-8")
        if self.lines == 0 and text.startswith("\ufeff"):
            text = text[1:]
        sequences: list[str] = []
        values: list[float] = []
        lines: list[int] = []
        for i, line in enumerate(text.split("\n")[:n_lines]):
            row = self.line_rules(line, self.lines + i + 1)
            if row is not None:
                sequences.append(row[0])
                values.append(row[1])
                lines.append(self.lines + i + 1)
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        codes = _LOOKUP[np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)]
        targets = np.asarray(values, dtype=np.float32)
        local = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        matrix, _ = SequenceStore(codes, local, lengths.astype(np.int32), np.empty(0, np.uint64)).rows(
            np.arange(lengths.size)
        )
        return codes, lengths, targets, np.asarray(lines, dtype=np.int64), sequences, _TEXT[matrix]

    def _add(self, codes, lengths, targets, lines, sequences, matrix) -> None:
        if lengths.size == 0:
            return
        if self.first_empty is None and (lengths == 0).any():
            self.first_empty = int(lines[np.argmax(lengths == 0)])
        offsets = self.letters + np.concatenate(([0], np.cumsum(lengths)[:-1]))
        if self.first_bad is None and sequences is not None:
            bad = np.flatnonzero(codes == INVALID)
            if bad.size:
                row = int(np.searchsorted(offsets - self.letters, bad[0], side="right") - 1)
                col = int(bad[0] - (offsets[row] - self.letters))
                self.first_bad = (int(lines[row]), sequences[row][col], col + 1)
        for length, row in zip(*np.unique(lengths, return_index=True)):
            self.length_first.setdefault(int(length), self.n + int(row))
        self.writer.append(
            codes=codes,
            offsets=offsets,
            lengths=lengths,
            hashes=text_hash(matrix, lengths),
            targets=targets,
            lines=lines,
        )
        self.n += lengths.size
        self.letters += codes.size


def scan_dream(path: str | Path, folder: Path, line_rules: Callable) -> dict:
    """Parse a DREAM text file into array files in ``folder``; returns the scan's summary.

    ``line_rules(line, number)`` applies the line-by-line rules to one line: it returns
    ``(sequence, value)``, None for a blank line, or raises the DataError for that line.
    """
    writer = ArrayWriter(folder)
    scan = _Scan(path, writer, line_rules)
    try:
        for i, chunk in enumerate(blocks(path)):
            scan.block(chunk, i == 0)
    finally:
        writer.close()
    if scan.n == 0:
        raise DataError("file holds no sequences" if scan.nonspace else "file is empty", path)
    if scan.first_empty is not None:
        raise DataError("empty sequence", path, scan.first_empty)
    if scan.first_bad is not None:
        line, letter, position = scan.first_bad
        raise DataError(
            f"letter {letter!r} at position {position} is not one of ACGTN (upper or lower case)", path, line
        )
    return {
        "n": scan.n,
        "letters": scan.letters,
        "n_targets": 1,
        "crc32": scan.writer.crc,
        "length_first": sorted(scan.length_first.items(), key=lambda kv: kv[1]),
    }
