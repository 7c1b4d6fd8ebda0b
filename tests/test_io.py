"""Atomic writes and JSON-safe values (src/utils/io.py)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from src.utils.io import atomic_write_bytes, atomic_write_text, json_safe, write_json


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "twö")
    assert path.read_text(encoding="utf-8") == "twö"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_atomic_write_respects_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = atomic_write_bytes(tmp_path / "private.bin", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "shared.bin", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.txt"
    atomic_write_text(path, "old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_json_safe_turns_non_finite_and_array_scalars_into_json() -> None:
    value = {
        "nan": math.nan,
        "inf": [math.inf, 1.5],
        "np": np.float32(0.25),
        "t": torch.tensor(3),
        "path": Path("a/b"),
        1: {"x"},
    }
    assert json_safe(value) == {"nan": None, "inf": [None, 1.5], "np": 0.25, "t": 3, "path": "a/b", "1": ["x"]}


def test_write_json_is_strict_json(tmp_path: Path) -> None:
    path = write_json(tmp_path / "m.json", {"r": float("nan"), "n": np.int64(4)})
    assert path.read_text().endswith("\n")
    assert json.loads(path.read_text()) == {"r": None, "n": 4}
