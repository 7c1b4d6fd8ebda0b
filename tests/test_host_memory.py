"""``keep_freed_memory``: a large block freed by one step is reused by the next without page faults."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from src.errors import ConfigError
from src.host_memory import keep_freed_memory
from tests.helpers import ROOT, TINY_ONEHOT_RESNET, tiny_run, train_cli

GLIBC = platform.libc_ver()[0] == "glibc"
RUN = [*TINY_ONEHOT_RESNET, *tiny_run(logger="none")]

# allocates and frees a 64 MB tensor (above glibc's largest mmap threshold) in rounds; prints faults per round once
# the heap has settled (the first rounds may place the block after small objects made in between)
FAULTS = """
import resource, sys, torch
from src.host_memory import keep_freed_memory
print(keep_freed_memory(sys.argv[1] == "on"))
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    x = torch.ones(16 * 2**20); del x
before = faults()
for _ in range(10):
    x = torch.ones(16 * 2**20); del x
print((faults() - before) / 10)
"""


def test_keep_freed_memory_values() -> None:
    assert keep_freed_memory(False) is False
    for bad in (3, "yes", None):
        with pytest.raises(ConfigError, match="keep_freed_memory must be true or false"):
            keep_freed_memory(bad)


def faults_per_round(setting: str) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", FAULTS, setting], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    applied, faults = out.stdout.split()
    return applied, float(faults)


@pytest.mark.skipif(not GLIBC, reason="keep_freed_memory only acts on glibc's malloc")
def test_freed_block_is_reused_without_page_faults() -> None:
    applied_off, off = faults_per_round("off")
    applied_on, on = faults_per_round("on")
    assert (applied_off, applied_on) == ("False", "True")
    # off: glibc maps a fresh 64 MB block each round (16,384 pages of 4 KB); on: the freed heap block is reused
    assert on < 1000 and on < off, (on, off)


def test_keep_freed_memory_from_the_command_line(tmp_path: Path) -> None:
    """``keep_freed_memory=true`` from the command line: the same metrics as without; a bad value: one line, exit 2."""

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        return train_cli([*RUN, *extra], tmp_path)

    ok = cli("keep_freed_memory=true", f"hydra.run.dir={tmp_path / 'ok'}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    if GLIBC:
        assert "freed host memory stays in the process" in ok.stdout + ok.stderr
    plain = cli(f"hydra.run.dir={tmp_path / 'plain'}")
    assert plain.returncode == 0, plain.stderr[-2000:]
    kept, usual = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("ok", "plain"))
    assert kept["metrics"] == usual["metrics"]  # where memory comes from changes no number
    bad = cli("keep_freed_memory=3", f"hydra.run.dir={tmp_path / 'bad'}")
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode == 2 and lines == ["error: keep_freed_memory must be true or false (got 3)"], lines
