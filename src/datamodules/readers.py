"""Readers for sequence files, with validation that names the file and the line.

* DREAM text: ``seq<TAB>expression`` per line, no header.
* Tables with a header (lentiMPRA, DeepSTARR): a sequence column and target columns.
* Prediction inputs: DREAM text (target optional), one sequence per line, FASTA, or a data set's
  header table (:mod:`.table_formats`).

Every reader returns :class:`Records`; any problem raises :class:`DataError`
(``"<file>:<line>: <problem>"``). Lower case is accepted; letters outside ACGTN,
empty sequences, NaN/inf/missing targets, missing columns, empty files, non-UTF-8
bytes and missing files are rejected. gzip files are read transparently.
"""

from __future__ import annotations

import io
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from src.datamodules.cache import cached, map_arrays, uncached
from src.datamodules.dream_text import Fallback, check_file, read_bytes, scan_dream
from src.datamodules.encoding import encode_array, find_invalid
from src.datamodules.store import SequenceStore, StoredSequences, all_n_rows, duplicate_counts
from src.datamodules.table_formats import TableFormat
from src.errors import DataError

log = logging.getLogger(__name__)

ALLOWED = "ACGTN"
ALL_N_ROWS_KEPT = 100  # rows of all-N reads a cache entry records (their lines are warned about; the rest counted)


@dataclass
class Records:
    """Validated sequences with their targets and source line numbers."""

    sequences: Sequence[str]
    targets: np.ndarray  # float32 (N, T); NaN only where targets are optional
    lines: np.ndarray  # int64 (N,): 1-based line of each record in ``path``
    path: str
    target_names: list[str] = field(default_factory=lambda: ["expression"])
    ids: list[str] | None = None
    store: SequenceStore | None = None  # compact arrays of the sequences (vectorised reader)
    length_first: tuple[np.ndarray, np.ndarray] | None = None  # distinct lengths, first row of each
    duplicates: tuple[int, int, int] | None = None  # see store.duplicate_counts
    split_labels: list[str] | None = None  # raw values of the split column (``set``), when read
    folds: np.ndarray | None = None  # int64 (N,): the fold column (lentiMPRA), when read
    all_n: tuple[int, np.ndarray] | None = None  # (count, first rows) of all-N reads, when the reader found them
    kind: str | None = None  # prediction inputs: "fasta", "<data set> table" or "text" (read_sequences)

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, rows: np.ndarray) -> Records:
        """The records at ``rows`` (a boolean mask or indices), same file and line numbers."""
        index = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        pick = index.tolist()
        return Records(
            [self.sequences[i] for i in pick],
            self.targets[index],
            self.lines[index],
            self.path,
            list(self.target_names),
            None if self.ids is None else [self.ids[i] for i in pick],
            split_labels=None if self.split_labels is None else [self.split_labels[i] for i in pick],
            folds=None if self.folds is None else self.folds[index],
        )

    @property
    def n_targets(self) -> int:
        return int(self.targets.shape[1])


def _open_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without newline); missing file and bad bytes -> DataError.

    gzip files (recognised by their first bytes) are decompressed first.
    """
    p = check_file(path)
    raw = read_bytes(p)
    if not raw.strip():
        raise DataError("file is empty", p)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text (byte 0x{raw[err.start]:02x})", p, line) from None
    for number, line in enumerate(text.splitlines(), start=1):
        yield number, line


def open_text(path: str | Path) -> io.StringIO:
    """A whole text file (plain or gzip) as a text stream that keeps its line endings (``newline=""``).

    Bytes that are not UTF-8 are a DataError citing the line; a leading byte-order mark is dropped.
    """
    p = check_file(path)
    raw = read_bytes(p)
    try:
        return io.StringIO(raw.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text (byte 0x{raw[err.start]:02x})", p, line) from None


def parse_float(value: str, path: str | Path, line: int, column: str, optional: bool = False) -> float:
    """A finite number from one field; anything else is a DataError citing ``path:line`` and ``column``."""
    value = value.strip()
    if not value:
        if optional:
            return math.nan
        raise DataError(f"missing {column} value", path, line)
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{column} {value!r} is not a number", path, line) from None
    if not math.isfinite(number) and not optional:
        raise DataError(f"{column} is {value} (must be finite)", path, line)
    return number


def validate_sequences(sequences: Sequence[str], lines: np.ndarray, path: str | Path) -> None:
    """Reject empty sequences and letters outside ACGTN (case-insensitive), citing the line."""
    for i, seq in enumerate(sequences):
        if not seq:
            raise DataError("empty sequence", path, int(lines[i]))
    codes, _ = encode_array(list(sequences))
    bad = find_invalid(codes)
    if bad is not None:
        row, col = bad
        letter = sequences[row][col]
        raise DataError(
            f"letter {letter!r} at position {col + 1} is not one of {ALLOWED} (upper or lower case)",
            path,
            int(lines[row]),
        )


def report_duplicates(records: Records) -> int:
    """Log how many sequences occur more than once; returns that count."""
    if records.duplicates is not None:
        n_dup, extra, most = records.duplicates
    else:
        counts = Counter(s.upper() for s in records.sequences)
        dups = [c for c in counts.values() if c > 1]
        n_dup, extra, most = len(dups), sum(c - 1 for c in dups), max(dups, default=0)
    if n_dup:
        log.warning(
            "%s: %d sequences occur more than once (%d extra copies; most frequent x%d)",
            records.path,
            n_dup,
            extra,
            most,
        )
    return n_dup


def dream_line(line: str, number: int, path: str | Path, targets_optional: bool = False) -> tuple[str, float] | None:
    """One DREAM text line -> (sequence, expression); None for a blank line; a DataError citing ``number``."""
    if not line.strip():
        return None
    parts = line.rstrip("\r").split("\t")
    if len(parts) > 2:
        raise DataError(f"expected 2 tab-separated columns (sequence, expression), found {len(parts)}", path, number)
    if len(parts) < 2 and not targets_optional:
        raise DataError("missing expression column (expected sequence<TAB>expression)", path, number)
    value = parse_float(parts[1], path, number, "expression", targets_optional) if len(parts) == 2 else math.nan
    return parts[0].strip(), value


def read_dream(
    path: str | Path,
    targets_optional: bool = False,
    cache: bool = False,
    cache_dir: str | Path | None = None,
) -> Records:
    """DREAM text: ``seq<TAB>expression`` (the value may be absent when ``targets_optional``).

    With targets required the file is parsed vectorised into compact arrays (:mod:`.dream_text`);
    ``cache=True`` keeps them in the binary cache under ``cache_dir`` (:mod:`.cache`), so later
    runs and parallel jobs map them instead of parsing again. Plain or gzip text alike.
    """
    if not targets_optional:
        try:
            return read_dream_arrays(path, cache, cache_dir)
        except Fallback:
            pass  # bytes beyond ASCII or unusual line breaks: the line-by-line reader
    return read_dream_lines(path, targets_optional)


def read_dream_lines(path: str | Path, targets_optional: bool = False) -> Records:
    """:func:`read_dream` line by line, keeping every sequence as a string (prediction inputs, odd files)."""
    sequences: list[str] = []
    values: list[float] = []
    lines: list[int] = []
    for number, line in _open_lines(path):
        row = dream_line(line, number, path, targets_optional)
        if row is not None:
            sequences.append(row[0])
            values.append(row[1])
            lines.append(number)
    if not sequences:
        raise DataError("file holds no sequences", path)
    line_arr = np.asarray(lines, dtype=np.int64)
    validate_sequences(sequences, line_arr, path)
    targets = np.asarray(values, dtype=np.float32)[:, None]
    return Records(sequences, targets, line_arr, str(path))


def read_dream_arrays(path: str | Path, cache: bool = False, cache_dir: str | Path | None = None) -> Records:
    """:func:`read_dream` through the vectorised reader and, with ``cache``, the binary cache."""
    check_file(path)

    def build(folder: Path) -> dict[str, Any]:
        summary = scan_dream(path, folder, lambda line, number: dream_line(line, number, path))
        n = summary["n"]
        summary["shapes"] = {
            "codes": [summary["letters"]],
            "offsets": [n],
            "lengths": [n],
            "hashes": [n],
            "targets": [n, 1],
            "lines": [n],
        }
        arrays = map_arrays(folder, summary)
        summary["duplicates"] = duplicate_counts(arrays["hashes"])
        # all-N reads are found once, here, so that runs on the cached entry do not scan every letter again
        rows = all_n_rows(SequenceStore(arrays["codes"], arrays["offsets"], arrays["lengths"], arrays["hashes"]))
        summary["all_n"] = [int(rows.size), rows[:ALL_N_ROWS_KEPT].tolist()]
        return summary

    if cache:
        meta, arrays = cached(path, "dream", {"targets_optional": False}, build, cache_dir)
    else:
        meta, arrays = uncached(build)
    # rows are read from the entry's codes file (the uncached build's folder is gone: its map serves them)
    codes_path = Path(meta["entry"]) / "codes.bin" if cache else None
    store = SequenceStore(arrays["codes"], arrays["offsets"], arrays["lengths"], arrays["hashes"], codes_path)
    lengths = np.asarray(meta["length_first"], dtype=np.int64).reshape(-1, 2)
    return Records(
        StoredSequences(store),
        arrays["targets"],
        arrays["lines"],
        str(path),
        store=store,
        length_first=(lengths[:, 0], lengths[:, 1]),
        duplicates=tuple(meta["duplicates"]),
        all_n=(int(meta["all_n"][0]), np.asarray(meta["all_n"][1], dtype=np.int64)),
    )


def read_table(
    path: str | Path,
    sequence_column: str,
    target_columns: Sequence[str],
    id_column: str | None = None,
    delimiter: str = "\t",
    split_column: str | None = None,
    fold_column: str | None = None,
) -> Records:
    """A delimited table with a header row (lentiMPRA, DeepSTARR, ...).

    ``split_column`` (DeepSTARR's ``set``) and ``fold_column`` (lentiMPRA's ``fold``, an
    integer) are read when the header has them and ignored otherwise; the split form
    that uses them is chosen by :mod:`src.datamodules.splits`.
    """
    rows = _open_lines(path)
    try:
        _, header_line = next(rows)
    except StopIteration:  # pragma: no cover - _open_lines rejects empty files
        raise DataError("file is empty", path) from None
    header = [h.strip() for h in header_line.split(delimiter)]
    wanted = [sequence_column, *target_columns] + ([id_column] if id_column else [])
    for column in wanted:
        if column not in header:
            raise DataError(f"missing column {column!r} (header has: {', '.join(header)})", path, 1)
    seq_i = header.index(sequence_column)
    tgt_i = [header.index(c) for c in target_columns]
    id_i = header.index(id_column) if id_column else None
    split_i = header.index(split_column) if split_column and split_column in header else None
    fold_i = header.index(fold_column) if fold_column and fold_column in header else None
    sequences, values, lines, ids, labels, folds = [], [], [], [], [], []
    for number, line in rows:
        if not line.strip():
            continue
        parts = line.rstrip("\r").split(delimiter)
        if len(parts) != len(header):
            raise DataError(f"expected {len(header)} columns like the header, found {len(parts)}", path, number)
        sequences.append(parts[seq_i].strip())
        values.append([parse_float(parts[i], path, number, header[i]) for i in tgt_i])
        lines.append(number)
        if id_i is not None:
            ids.append(parts[id_i].strip())
        if split_i is not None:
            labels.append(parts[split_i].strip())
        if fold_i is not None:
            fold = parts[fold_i].strip()
            if not fold.lstrip("-").isdigit():
                raise DataError(f"{header[fold_i]} {fold!r} is not an integer fold", path, number)
            folds.append(int(fold))
    if not sequences:
        raise DataError("file holds a header but no rows", path)
    line_arr = np.asarray(lines, dtype=np.int64)
    validate_sequences(sequences, line_arr, path)
    return Records(
        sequences,
        np.asarray(values, dtype=np.float32),
        line_arr,
        str(path),
        list(target_columns),
        ids if id_i is not None else None,
        split_labels=labels if split_i is not None else None,
        folds=np.asarray(folds, dtype=np.int64) if fold_i is not None else None,
    )


def read_fasta(path: str | Path) -> Records:
    """FASTA (multi-line records allowed); ids from the header lines."""
    ids: list[str] = []
    chunks: list[list[str]] = []
    lines: list[int] = []
    body: list[int] = []  # line number of every sequence line
    for number, line in _open_lines(path):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            ids.append(line[1:].strip())
            chunks.append([])
            lines.append(number)
        elif not chunks:
            raise DataError("sequence line before the first '>' header", path, number)
        else:
            chunks[-1].append(line)
            body.append(number)
    sequences = ["".join(c) for c in chunks]
    if not sequences:
        raise DataError("no FASTA records", path)
    line_arr = np.asarray(lines, dtype=np.int64)
    # letters are checked line by line so that a bad one is cited on its own line, not on the header's
    validate_sequences([c for chunk in chunks for c in chunk], np.asarray(body, dtype=np.int64), path)
    validate_sequences(sequences, line_arr, path)  # empty records: cited on their header line
    return Records(sequences, np.full((len(sequences), 1), np.nan, np.float32), line_arr, str(path), ids=ids)


def match_table(header: str, tables: Sequence[TableFormat]) -> TableFormat | None:
    """The first of ``tables`` whose sequence column is a field of the ``header`` line, else None."""
    for table in tables:
        if table.sequence_column in (field.strip() for field in header.split(table.delimiter)):
            return table
    return None


def read_sequences(path: str | Path, tables: Sequence[TableFormat] = ()) -> Records:
    """Prediction input, detected by content: FASTA (``>``), a data set table, DREAM text (tab) or plain lines.

    A first line holding the sequence column of one of ``tables`` (see :mod:`.table_formats`) is that
    table's header: the file is read by :func:`read_table` with its id column when the header has one
    (ids: FASTA headers or that column); its target columns are not needed.
    """
    for _, line in _open_lines(path):
        if line.strip():
            if line.lstrip().startswith(">"):
                records, records.kind = read_fasta(path), "fasta"
                return records
            table = match_table(line, tables)
            if table is not None:
                present = {field.strip() for field in line.split(table.delimiter)}
                id_column = table.id_column if table.id_column in present else None
                records = read_table(path, table.sequence_column, [], id_column, table.delimiter)
                records.kind = f"{table.name} table"
                return records
            records, records.kind = read_dream(path, targets_optional=True), "text"
            return records
    raise DataError("file holds no sequences", path)  # pragma: no cover - empty files rejected above
