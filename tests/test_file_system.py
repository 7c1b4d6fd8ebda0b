"""File-system errors are one line naming the path, before the expensive work where possible."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.entry import run_task
from src.train_task import train
from tests.helpers import FAST, ROOT, compose_cfg

TINY = [
    "first=resnet",
    "core=resnet",
    "final=resnet",
    "first.block.out_channels=8",
    "core.block.widths=[8,8,8,8]",
    "core.block.depths=[1,1,1,1]",
]
READ_ONLY = Path("/sys")  # read-only for every user, root included, on Linux


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def run_script(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_full_disk_is_one_line_and_keeps_what_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("an earlier run's config\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # the disk fills up when the config is flushed
    cfg = compose_cfg([*FAST, *TINY], run_dir=run_dir)
    with pytest.raises(SystemExit) as exit_info:
        run_task(train, cfg)
    assert exit_info.value.code == 2
    assert one_error_line(capsys) == f"error: cannot write {run_dir / 'config.yaml'}: No space left on device"
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]  # no temporary file left
    assert (run_dir / "config.yaml").read_text() == "an earlier run's config\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_gpu_trainer_without_cuda_is_one_line_before_config_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        run_task(train, compose_cfg([*FAST, *TINY, "trainer=gpu"], run_dir=run_dir))
    assert exit_info.value.code == 2
    assert one_error_line(capsys).startswith("error: trainer.accelerator=gpu: no CUDA GPU is visible to torch")
    assert list(run_dir.iterdir()) == []


def test_read_only_run_folder_fails_before_reading_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.access(READ_ONLY, os.W_OK) and not os.path.ismount(READ_ONLY):
        pytest.skip(f"{READ_ONLY} is writable here")
    # data.path does not exist: reading the data would be the error if the folder were checked later
    quick = [o for o in FAST if not o.startswith("data.")]
    cfg = compose_cfg([*quick, *TINY, "data=dream", "data.path=/nonexistent.txt"], run_dir=READ_ONLY)
    with pytest.raises(SystemExit):
        run_task(train, cfg)
    assert one_error_line(capsys).startswith(f"error: hydra.run.dir: cannot write in {READ_ONLY}: ")


def test_predict_checks_its_output_before_loading_the_model(tmp_path: Path) -> None:
    args = ["ckpt_path=none.ckpt", "input=none.txt", "output=missing/sub/pred.tsv"]
    result = run_script("predict.py", args, tmp_path)
    assert result.returncode == 2
    expected = "error: output: the parent folder missing of missing/sub does not exist"
    assert result.stderr.strip().splitlines() == [expected], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_evaluate_checks_its_output_folder_before_predicting(tmp_path: Path) -> None:
    if os.access(READ_ONLY, os.W_OK) and not os.path.ismount(READ_ONLY):
        pytest.skip(f"{READ_ONLY} is writable here")
    out_dir = READ_ONLY / "evaluation"
    result = run_script("evaluate.py", ["ckpt_path=none.ckpt", "test=none", f"out_dir={out_dir}"], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: out_dir: cannot create {out_dir}: "), result.stderr
