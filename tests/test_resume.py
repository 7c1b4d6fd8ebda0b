"""Interrupted runs: a killed run resumes to the metrics of an uninterrupted one; divergence stops a run cleanly.

The tiny model has dropout (``first=bhi``), so a resumed epoch must also repeat the random draws of the
uninterrupted run, not only its batches, learning-rate schedule and optimizer state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

import src.train_task as train_task
from src.errors import DivergedError
from src.train_task import train
from tests.helpers import ROOT, compose_cfg, tiny_dropout_run

# a tiny model with dropout; 4 epochs of 17 steps
RUN = tiny_dropout_run(n=600, epochs=4)
COMPARED = ("val/pearson", "val/mse", "val/spearman")


class Recorder(L.Callback):
    """Per epoch: the first targets of batch 0 and one draw of the global torch generator at batch 0."""

    def __init__(self) -> None:
        self.epochs: dict[int, tuple[list[float], float]] = {}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == 0:
            state = torch.get_rng_state()
            self.epochs[trainer.current_epoch] = (batch["y"][:8, 0].tolist(), float(torch.rand(1)))
            torch.set_rng_state(state)  # observe without consuming


class StopAt(L.Callback):
    """Simulates a crash when the given epoch starts (the previous epoch's last.ckpt is on disk)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.current_epoch == self.epoch:
            raise Crash(f"crash at the start of epoch {self.epoch}")


class Crash(RuntimeError):
    pass


def train_with(cfg: Any, *extra: L.Callback) -> dict[str, Any]:
    original = train_task.build_callbacks
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_task, "build_callbacks", lambda c, d: [*original(c, d), *extra])
        return train(cfg)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Recorder]:
    """The uninterrupted run (in-process)."""
    recorder = Recorder()
    summary = train_with(compose_cfg(RUN, run_dir=tmp_path_factory.mktemp("reference")), recorder)
    return summary, recorder


def assert_same_metrics(summary: dict[str, Any], ref: dict[str, Any]) -> None:
    assert summary["status"] == ref["status"] == "ok"
    assert summary["epochs"] == ref["epochs"] == 4 and summary["global_step"] == ref["global_step"]
    for key in COMPARED:
        assert summary["metrics"][key] == pytest.approx(ref["metrics"][key], abs=1e-5), key
    assert summary["best_score"] == pytest.approx(ref["best_score"], abs=1e-5)


def test_epochs_draw_new_batches(reference: tuple[dict[str, Any], Recorder]) -> None:
    """Each epoch takes the next batches of the (seed, epoch) stream, not epoch 0's again."""
    _, recorder = reference
    first_batches = [tuple(recorder.epochs[e][0]) for e in range(4)]
    assert len(set(first_batches)) == 4


def test_interrupted_run_resumes_with_ckpt_path_last(
    tmp_path: Path, reference: tuple[dict[str, Any], Recorder]
) -> None:
    """Crash at the start of epoch 2, resume with ckpt_path=last: same batches, same draws, same metrics."""
    ref, ref_recorder = reference
    with pytest.raises(Crash):
        train_with(compose_cfg(RUN, run_dir=tmp_path), StopAt(2))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1  # written after every epoch
    assert not (tmp_path / "metrics.json").exists()

    recorder = Recorder()
    summary = train_with(compose_cfg([*RUN, "ckpt_path=last"], run_dir=tmp_path), recorder)
    assert sorted(recorder.epochs) == [2, 3]
    for epoch in (2, 3):
        assert recorder.epochs[epoch][0] == ref_recorder.epochs[epoch][0]  # same batch
        assert recorder.epochs[epoch][1] == ref_recorder.epochs[epoch][1]  # same dropout stream
    assert_same_metrics(summary, ref)


def _ckpt_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # absent, or being replaced right now
        return -1


def _cli(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *RUN, *extra, f"hydra.run.dir={run_dir}"]


def test_sigkilled_run_resumes_to_the_same_metrics(tmp_path: Path, reference: tuple[dict[str, Any], Recorder]) -> None:
    """SIGKILL the process group after epoch 1's checkpoint, rerun with resume=true in the same run folder."""
    ref, _ = reference
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    last = run_dir / "checkpoints" / "last.ckpt"
    with open(tmp_path / "attempt1.log", "w") as log:
        proc = subprocess.Popen(
            _cli(run_dir), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 150
            while proc.poll() is None and time.monotonic() < deadline and _ckpt_epoch(last) < 1:
                time.sleep(0.02)
            still_running = proc.poll() is None
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
    attempt1 = (tmp_path / "attempt1.log").read_text()
    assert still_running, f"the run ended before it could be killed:\n{attempt1[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    killed_at = _ckpt_epoch(last)
    assert 1 <= killed_at < 3
    first_csv = run_dir / "csv" / "version_0" / "metrics.csv"
    csv_before = first_csv.read_text()
    assert "val/pearson" in csv_before  # epoch 0 at least was flushed

    resumed = subprocess.run(_cli(run_dir, "resume=true"), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Restoring states from the checkpoint path at {last}" in resumed.stdout + resumed.stderr
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert_same_metrics(summary, ref)
    # nothing the first attempt wrote is lost: its CSV log stays, the second attempt logs beside it
    assert first_csv.read_text() == csv_before
    assert (run_dir / "csv" / "version_1" / "metrics.csv").exists()


# ------------------------------------------------------------------------------------------------ divergence
class PoisonAt(L.Callback):
    """Makes the loss NaN from the given epoch on (a weight becomes NaN before its first step)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == 3:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))


def test_divergence_stops_the_run_and_keeps_earlier_checkpoints(tmp_path: Path) -> None:
    cfg = compose_cfg([*RUN, "recipe.epochs=3", "data.source.n=400"], run_dir=tmp_path)
    with pytest.raises(DivergedError, match=r"training diverged: training loss became NaN/inf at epoch 1"):
        train_with(cfg, PoisonAt(1))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "NaN/inf" in metrics["error"]
    assert metrics["epochs"] == 1 and metrics["global_step"] > 0
    # the checkpoint of epoch 0 was written before and stays intact and finite
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values() if t.is_floating_point())
    assert metrics["best_checkpoint"] and Path(metrics["best_checkpoint"]).exists()


def test_a_diverging_single_run_exits_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``recipe.lr=1e30``: the loss is inf within two steps; the CLI wrapper prints one line and exits with 3."""
    from src.entry import run_task

    cfg = compose_cfg([*RUN, "recipe.epochs=1", "data.source.n=200", "recipe.lr=1e30"], run_dir=tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_task(train, cfg)
    assert exit_info.value.code == 3  # entry.EXIT_DIVERGED (2 is bad input or config)
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: training diverged"), err
    assert "Traceback" not in err
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "diverged"
