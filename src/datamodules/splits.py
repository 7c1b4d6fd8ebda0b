"""Train / validation / test splits as the data sets publish them.

Four forms, chosen by ``data.split`` (``auto`` picks the first that applies):

* ``folder``: ``data.path`` is a folder of split files. Names come from ``data.split_files``
  (``{train: ..., val: ..., test: ...}``) or are found by pattern: the one file whose name holds
  ``train``, the one holding ``val`` (``valid``, ``validation``) and the one holding ``test``
  (optional). Any split column inside the files is ignored: the file decides.
* ``column``: one file with a split column (DeepSTARR's ``set``: ``Train``/``Val``/``Test``,
  case-insensitive; ``valid``/``validation`` also mean validation).
* ``fold``: one file with an integer fold column (lentiMPRA's 10 folds): ``data.test_fold`` is
  the test split, ``data.val_fold`` the validation split, the other folds train. ``data.fold_pair=p``
  names one of the ``n (n - 1)`` ordered pairs instead (:func:`ordered_fold_pair`), so
  ``data.fold_pair=range(90)`` sweeps lentiMPRA's whole protocol.
* ``hash``: no published split: a sequence-hash fold is the validation split, no test split
  (see :mod:`src.datamodules.split`). The DREAM and synthetic data always use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from src.datamodules.readers import Records
from src.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MODES = ("auto", "folder", "column", "fold", "hash")
LABELS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
# file-name fragments that identify a split file in a folder (checked in this order per split)
NAME_HINTS = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}

SplitData = Records | dict[str, Records]


def find_split_files(folder: str | Path, names: Mapping[str, str] | None = None) -> dict[str, Path]:
    """``{split: file}`` in ``folder``: from ``names`` when given, else by file-name pattern."""
    root = Path(folder)
    if names:
        unknown = sorted(set(names) - set(SPLITS))
        if unknown:
            raise ConfigError(f"data.split_files: unknown split(s) {unknown}; use train, val, test")
        found = {split: root / str(name) for split, name in names.items() if name}
        for split, path in found.items():
            if not path.is_file():
                raise ConfigError(f"data.split_files.{split}: {path} is not a file")
    else:
        files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
        found = {}
        for split, hints in NAME_HINTS.items():
            matches = [p for p in files if any(h in p.name.lower() for h in hints)]
            if len(matches) > 1:
                raise ConfigError(
                    f"data.path {root}: {len(matches)} files look like the {split} split "
                    f"({', '.join(p.name for p in matches)}); name them with data.split_files.{split}=..."
                )
            if matches:
                found[split] = matches[0]
    for split in ("train", "val"):
        if split not in found:
            raise ConfigError(
                f"data.path {root}: no {split} file (expected a name holding "
                f"{' or '.join(repr(h) for h in NAME_HINTS[split])}, or data.split_files.{split}=...)"
            )
    return found


def read_source(
    path: str | Path,
    reader: Callable[..., Records],
    split_files: Mapping[str, str] | None = None,
) -> SplitData:
    """One file -> its :class:`Records`; a folder -> ``{split: Records}`` of its split files."""
    p = Path(path)
    if not p.is_dir():
        return reader(path=path)
    files = find_split_files(p, split_files)
    log.info("data %s: split files %s", p, ", ".join(f"{s}={f.name}" for s, f in files.items()))
    return {split: reader(path=file) for split, file in files.items()}


def resolve_mode(data: SplitData, mode: str) -> str:
    """The split form to use; an impossible request is a ConfigError naming ``data.split``."""
    if mode not in MODES:
        raise ConfigError(f"data.split={mode!r} is not one of {', '.join(MODES)}")
    if isinstance(data, dict):
        if mode not in {"auto", "folder"}:
            raise ConfigError(f"data.split={mode}: data.path is a folder of split files (use data.split=folder)")
        return "folder"
    if mode == "folder":
        raise ConfigError(f"data.split=folder: data.path {data.path} is a file, not a folder of split files")
    if mode == "column" and data.split_labels is None:
        raise ConfigError(f"data.split=column: {data.path} has no split column")
    if mode == "fold" and data.folds is None:
        raise ConfigError(f"data.split=fold: {data.path} has no fold column")
    if mode != "auto":
        return mode
    if data.split_labels is not None:
        return "column"
    if data.folds is not None:
        return "fold"
    return "hash"


def column_assignment(records: Records) -> np.ndarray:
    """Split index per row (0 train, 1 val, 2 test) from the split column; unknown labels -> DataError."""
    assert records.split_labels is not None
    which = np.empty(len(records), dtype=np.int64)
    for i, label in enumerate(records.split_labels):
        split = LABELS.get(label.strip().lower())
        if split is None:
            raise DataError(
                f"split column value {label!r} is not one of Train, Val, Test (or training, valid, validation, "
                "testing; any case)",
                records.path,
                int(records.lines[i]),
            )
        which[i] = SPLITS.index(split)
    for index, split in enumerate(SPLITS[:2]):
        if not (which == index).any():
            values = sorted(set(records.split_labels))
            raise DataError(
                f"the split column holds no {split} rows (values: {', '.join(values)}); use a folder of split "
                "files as data.path, or data.split=hash",
                records.path,
            )
    return which


def fold_assignment(records: Records, test_fold: int | None, val_fold: int | None) -> np.ndarray:
    """Split index per row from the fold column: ``test_fold`` -> test, ``val_fold`` -> val, others train."""
    assert records.folds is not None
    if val_fold is None:
        raise ConfigError(f"{records.path} is split by its fold column: set data.val_fold (and data.test_fold)")
    if test_fold is not None and int(test_fold) == int(val_fold):
        raise ConfigError(f"data.test_fold and data.val_fold are both {val_fold}; they must differ")
    which = np.zeros(len(records), dtype=np.int64)
    which[records.folds == int(val_fold)] = 1
    if test_fold is not None:
        which[records.folds == int(test_fold)] = 2
    present = sorted(set(records.folds.tolist()))
    for key, fold in (("data.val_fold", val_fold), ("data.test_fold", test_fold)):
        if fold is not None and int(fold) not in present:
            raise ConfigError(f"{key}={fold}: {records.path} holds folds {present}")
    return which


def ordered_fold_pair(pair: int, n_folds: int) -> tuple[int, int]:
    """``(test fold k, validation fold j)``, ``k != j``, of ordered pair number ``pair`` of ``n_folds`` folds.

    Pairs are numbered test fold first: ``pair = k (n - 1) + i`` where ``j`` is the ``i``-th fold other
    than ``k``. With 10 folds, pairs 0..8 test on fold 0 and validate on folds 1..9, pair 9 is (1, 0),
    pair 89 is (9, 8).
    """
    n = int(n_folds)
    if n < 2:
        raise ConfigError(f"data.n_folds={n_folds}: ordered fold pairs need at least 2 folds")
    if isinstance(pair, bool) or not isinstance(pair, int) or not 0 <= pair < n * (n - 1):
        raise ConfigError(f"data.fold_pair={pair}: must be an integer in 0..{n * (n - 1) - 1} ({n} folds)")
    test, index = divmod(pair, n - 1)
    return test, index if index < test else index + 1


def fold_of_pair(pair: int | None, n_folds: int, role: str, default: int | None) -> int | None:
    """The ``role`` (``test`` or ``val``) fold of ``data.fold_pair``, or ``default`` when no pair is set.

    The ``${pf.fold:...}`` resolver of ``conf/data/human_mpra.yaml`` (``data.test_fold`` / ``data.val_fold``).
    """
    if pair is None:
        return default
    test, val = ordered_fold_pair(pair, n_folds)
    return test if role == "test" else val


def check_sizes(counts: Mapping[str, int], form: str, path: str) -> None:
    """Training and validation splits must hold rows (an empty test split is simply absent)."""
    for split in ("train", "val"):
        if not counts.get(split):
            raise DataError(f"the {split} split is empty (data.split={form})", path)
