"""The sweep ledger: atomic JSONL appends, crash tolerance, resume semantics."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
from pathlib import Path

import pytest

from src.sweep.ledger import (
    LEDGER_NAME,
    TORN_SUFFIX,
    append_record,
    is_done,
    job_key,
    latest_by_key,
    make_record,
    peak_memory_mb,
    read_ledger,
)

OVERRIDES = {"first": "autosome", "core": "bhi", "final": "resnet", "seed": 1}


def _record(seed: int = 1, status: str = "ok", **kwargs) -> dict:
    return make_record(overrides={**OVERRIDES, "seed": seed}, status=status, **kwargs)


def test_job_key_is_sorted_and_stable() -> None:
    assert job_key(OVERRIDES) == "core=bhi,final=resnet,first=autosome,seed=1"
    assert job_key(dict(reversed(list(OVERRIDES.items())))) == job_key(OVERRIDES)


def test_make_record_fields_and_status_validation() -> None:
    rec = _record(metrics={"val/pearson": 0.5}, params=123, seconds=1.5, peak_memory_mb=10.0, run_dir=Path("/x"))
    assert rec["key"] == job_key(OVERRIDES)
    assert rec["combination"] == {"first": "autosome", "core": "bhi", "final": "resnet"}
    assert rec["overrides"] == OVERRIDES
    assert rec["params"] == 123 and rec["run_dir"] == "/x" and rec["error"] is None
    assert rec["time"].endswith("+00:00")
    with pytest.raises(ValueError, match="status"):
        _record(status="maybe")


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sweep" / LEDGER_NAME  # parent folder is created
    records = [_record(seed=s, metrics={"val/pearson": 0.1 * s}) for s in range(3)]
    for rec in records:
        append_record(path, rec)
    assert read_ledger(path) == records
    assert path.read_text().count("\n") == 3
    assert read_ledger(tmp_path / "missing.jsonl") == []


def test_non_finite_metrics_become_null(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    append_record(path, _record(metrics={"val/pearson": float("nan"), "val/mse": math.inf, "val/spearman": 0.2}))
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    (rec,) = read_ledger(path)
    assert rec["metrics"] == {"val/pearson": None, "val/mse": None, "val/spearman": 0.2}


def _append_many(path: str, worker: int, n: int) -> None:
    for i in range(n):
        rec = make_record(
            overrides={**OVERRIDES, "seed": i, "worker": worker},
            status="ok",
            metrics={"val/pearson": i / n},
            error="x" * 2000,  # long lines make torn interleaving likely if appends were not atomic
        )
        append_record(path, rec)


def test_concurrent_appends(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    records = read_ledger(path)
    assert len(records) == 200
    assert len(latest_by_key(records)) == 200
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_truncated_last_line_is_skipped_and_next_append_works(tmp_path: Path, caplog) -> None:
    path = tmp_path / LEDGER_NAME
    append_record(path, _record(seed=1))
    torn = json.dumps(_record(seed=2))[:40]
    with open(path, "a") as fh:
        fh.write(torn)  # a job killed mid-write: no newline
    with caplog.at_level(logging.WARNING):
        assert [r["key"] for r in read_ledger(path)] == [job_key({**OVERRIDES, "seed": 1})]
    assert "truncated" in caplog.text

    append_record(path, _record(seed=3))
    lines = path.read_text().splitlines()
    assert lines[1] == torn + TORN_SUFFIX and json.loads(lines[2])["overrides"]["seed"] == 3
    assert [r["overrides"]["seed"] for r in read_ledger(path)] == [1, 3]
    append_record(path, _record(seed=4))  # the repaired ledger keeps working
    assert [r["overrides"]["seed"] for r in read_ledger(path)] == [1, 3, 4]


def test_garbage_in_the_middle_raises_with_line_number(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    append_record(path, _record(seed=1))
    with open(path, "a") as fh:
        fh.write("this is not json\n")
    append_record(path, _record(seed=2))
    with pytest.raises(ValueError, match=rf"{LEDGER_NAME}:2"):
        read_ledger(path)


def test_latest_by_key_and_is_done(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    key1, key2 = job_key({**OVERRIDES, "seed": 1}), job_key({**OVERRIDES, "seed": 2})
    assert not is_done(path, key1)  # no ledger yet
    append_record(path, _record(seed=1, status="failed", error="boom"))
    assert not is_done(path, key1)
    append_record(path, _record(seed=1, status="ok"))
    assert is_done(path, key1)  # failed then ok -> done

    append_record(path, _record(seed=2, status="ok"))
    append_record(path, _record(seed=2, status="diverged"))
    assert not is_done(path, key2)  # ok then failed -> not done
    latest = latest_by_key(read_ledger(path))
    assert latest[key1]["status"] == "ok" and latest[key2]["status"] == "diverged"


def test_peak_memory_is_positive() -> None:
    assert peak_memory_mb() > 1.0
