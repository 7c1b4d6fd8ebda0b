"""One run per folder: a second ``train.py`` in a folder in use refuses in one line (exit 2) and writes nothing;
the lock goes when its run ends and is taken over from a dead owner."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.errors import ConfigError
from src.run_lock import LOCK_NAME, releasing_run_locks, take_run_lock
from tests.helpers import FAST, ROOT, compose_cfg, tiny_dropout_run, train_cli

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_process_in_the_same_folder_refuses_and_writes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    lock = run_dir / LOCK_NAME
    first_cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        *tiny_dropout_run(n=600, epochs=50),
        f"hydra.run.dir={run_dir}",
    ]
    first = subprocess.Popen(first_cmd, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while first.poll() is None and time.monotonic() < deadline and not (run_dir / "config.yaml").exists():
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended early"
        owner = json.loads(lock.read_text())
        assert owner["pid"] == first.pid and owner["host"] == socket.gethostname()
        first.send_signal(signal.SIGSTOP)  # holds still: the folder cannot change while the second one runs
        before = _files(run_dir)
        second = train_cli([*FAST, "seed=7", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
        after = _files(run_dir)
        first.send_signal(signal.SIGCONT)
    finally:
        first.kill()
        first.wait(timeout=60)
    lines = [line for line in (second.stdout + second.stderr).splitlines() if line.strip()]
    assert second.returncode == 2, second.stderr[-2000:]
    assert len(lines) == 1, lines
    assert str(run_dir) in lines[0] and f"process {first.pid} on {socket.gethostname()}" in lines[0]
    assert after == before  # nothing written (no config.yaml, logs, checkpoints or metrics of its own)

    # the first run was killed (SIGKILL): its lock is left behind, and the next run takes it over
    assert json.loads(lock.read_text())["pid"] == first.pid
    with releasing_run_locks():
        assert take_run_lock(run_dir) == lock
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()  # released when the block ends


def test_a_run_releases_its_lock_and_refuses_a_live_owner(tmp_path: Path) -> None:
    from src.train_task import train

    with releasing_run_locks():  # a live process (this one) holds the folder: the run refuses before writing
        take_run_lock(tmp_path)
        owner = re.escape(f"{tmp_path} is in use by another run (process {os.getpid()} on {socket.gethostname()}")
        with pytest.raises(ConfigError, match=owner):
            train(compose_cfg(FAST, run_dir=tmp_path))
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]
    summary = train(compose_cfg(FAST, run_dir=tmp_path))
    assert summary["status"] == "ok" and not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize("variable", ["LOCAL_RANK", "RANK", "NODE_RANK", "SLURM_PROCID"])
def test_a_secondary_ddp_rank_joins_the_run_its_first_rank_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """Rank 0 holds the lock; a rank > 0 of the same run takes none and does not refuse (DDP would hang)."""
    with releasing_run_locks():
        lock = take_run_lock(tmp_path)  # rank 0 (this process, no rank variables)
        owner = lock.read_text()
        monkeypatch.setenv(variable, "1")
        assert take_run_lock(tmp_path) == lock  # no ConfigError although a live process holds it
        assert lock.read_text() == owner
        monkeypatch.setenv(variable, "0")
        with pytest.raises(ConfigError, match="is in use by another run"):
            take_run_lock(tmp_path)
