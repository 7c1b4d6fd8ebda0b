"""SIGTERM / SIGINT in the middle of an epoch: a checkpoint at that step, exit 143 / 130, status ``interrupted``,
and ``resume=true`` ends with the metrics of an uninterrupted run (real processes, real signals)."""

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
from src.errors import Interrupted
from src.sweep.job import run_ledgered
from src.sweep.ledger import read_ledger
from src.train_task import train
from tests.helpers import ROOT, compose_cfg, make_ctx, read_wandb_records, small_cfg, tiny_dropout_run

# a tiny model with dropout; 4 epochs of 17 steps (600 reads, batches of 32); the logger is chosen per test
RUN = [o for o in tiny_dropout_run(n=600, epochs=4) if not o.startswith("logger=")]
STEPS_PER_EPOCH = 17
COMPARED = ("val/pearson", "val/mse", "val/spearman")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def _cli(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *RUN, *extra, f"hydra.run.dir={run_dir}"]


def _step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # absent, or being replaced right now
        return -1


def interrupt_mid_run(run_dir: Path, signum: int, *extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Start a run, send ``signum`` once epoch 0's checkpoint is on disk; the finished process and its output."""
    last = run_dir / "checkpoints" / "last.ckpt"
    log_path = run_dir.parent / f"{run_dir.name}-{signal.Signals(signum).name}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            _cli(run_dir, *extra), cwd=run_dir.parent, env=ENV, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 150
            while proc.poll() is None and time.monotonic() < deadline and _step(last) < STEPS_PER_EPOCH:
                time.sleep(0.02)
            running = proc.poll() is None
            if running:
                proc.send_signal(signum)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log_path.read_text()
    assert running, f"the run ended before the signal:\n{output[-2000:]}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, output, ""), output


def assert_stopped_mid_epoch(run_dir: Path, output: str, status: int) -> int:
    """The process exited with ``status`` and left a mid-epoch checkpoint and status ``interrupted``; its step."""
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == "interrupted", output[-2000:]
    step = _step(run_dir / "checkpoints" / "last.ckpt")
    assert STEPS_PER_EPOCH < step < 4 * STEPS_PER_EPOCH and step % STEPS_PER_EPOCH != 0, step  # inside epoch 1-3
    assert summary["global_step"] == step
    assert f"checkpoint saved at step {step}" in output and "resume=true continues the run" in output
    return step


def test_sigterm_mid_epoch_saves_exits_143_and_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    reference = train(compose_cfg([*RUN, "logger=csv"], run_dir=tmp_path / "reference"))  # uninterrupted, in-process

    run_dir = tmp_path / "run"
    proc, output = interrupt_mid_run(run_dir, signal.SIGTERM, "logger=wandb")
    assert proc.returncode == 143, output[-3000:]
    assert_stopped_mid_epoch(run_dir, output, 143)
    (wandb_run,) = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    exits = [r.exit for r in read_wandb_records(wandb_run) if r.WhichOneof("record_type") == "exit"]
    assert exits and exits[-1].exit_code == 143

    resumed = subprocess.run(
        _cli(run_dir, "logger=wandb", "resume=true"), cwd=tmp_path, env=ENV, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming inside epoch" in resumed.stdout + resumed.stderr
    summary: dict[str, Any] = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == reference["status"] == "ok"
    assert summary["epochs"] == reference["epochs"] == 4
    assert summary["global_step"] == reference["global_step"] == 4 * STEPS_PER_EPOCH
    for key in COMPARED:  # same batches, same dropout draws, same schedule: the same numbers
        assert summary["metrics"][key] == pytest.approx(reference["metrics"][key], abs=1e-5), key
    assert summary["best_score"] == pytest.approx(reference["best_score"], abs=1e-5)
    assert summary["previous"][-1]["status"] == "interrupted"


def test_sigint_mid_epoch_saves_and_exits_130(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc, output = interrupt_mid_run(run_dir, signal.SIGINT, "logger=csv")
    assert proc.returncode == 130, output[-3000:]
    assert_stopped_mid_epoch(run_dir, output, 130)
    assert "Traceback" not in output


def test_an_interrupted_sweep_job_is_recorded_and_stops_the_sweep(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)

    def task(cfg: Any) -> None:
        raise Interrupted(signal.SIGTERM, ctx.job_dir / "checkpoints" / "last.ckpt", 12)

    with pytest.raises(Interrupted) as stopped:  # not absorbed like a failed job: the whole sweep stops
        run_ledgered(task, small_cfg(), ctx)
    assert stopped.value.code == 143
    (record,) = read_ledger(ctx.ledger)
    assert record["status"] == "interrupted" and record["error"] == "Interrupted: stopped by SIGTERM at step 12"


class SignalAt(L.Callback):
    """Sends this process a real SIGTERM as the given global step starts."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_resume_inside_an_epoch_with_loader_workers_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    """With worker processes (batches handed out before the checkpoint is restored) the resumed epoch still
    starts at the step it reached: 2 epochs of 17 steps, SIGTERM at step 20 (epoch 1), same final metrics."""
    overrides = [*RUN, "recipe.epochs=2", "datamodule.num_workers=2", "logger=csv"]
    reference = train(compose_cfg(overrides, run_dir=tmp_path / "reference"))
    original = train_task.build_callbacks
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_task, "build_callbacks", lambda c, d: [*original(c, d), SignalAt(20)])
        with pytest.raises(Interrupted) as stopped:
            train(compose_cfg(overrides, run_dir=tmp_path / "run"))
    assert stopped.value.code == 143 and stopped.value.step == 21
    resumed = train(compose_cfg([*overrides, "resume=true"], run_dir=tmp_path / "run"))
    assert resumed["global_step"] == reference["global_step"] == 34
    for key in COMPARED:
        assert resumed["metrics"][key] == pytest.approx(reference["metrics"][key], abs=1e-5), key


class RaiseKeyboardInterrupt(L.Callback):
    """Ctrl-C as Python delivers it without the run's own handler (e.g. before training starts), at step 20."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == 20:
            raise KeyboardInterrupt


def test_a_ctrl_c_that_lightning_turns_into_exit_1_still_exits_130(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    original = train_task.build_callbacks
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(train_task, "build_callbacks", lambda c, d: [*original(c, d), RaiseKeyboardInterrupt()])
            with pytest.raises(SystemExit) as stopped:
                train(compose_cfg([*RUN, "recipe.epochs=2", "logger=csv"], run_dir=tmp_path))
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores further Ctrl-C during its shutdown
    assert stopped.value.code == 130
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "interrupted"
    # no checkpoint at the interrupt: the epoch-0 one is named, and resuming from it is true
    assert f"no checkpoint at the interrupt; the last one is {tmp_path / 'checkpoints' / 'last.ckpt'}" in caplog.text


@pytest.mark.slow
def test_a_sweep_stopped_by_sigterm_continues_the_interrupted_job_when_run_again(tmp_path: Path) -> None:
    """SIGTERM a real two-job sweep inside its first job: exit 143, an ``interrupted`` ledger record; the same
    command again continues that job from its checkpoint (to an uninterrupted run's metrics) and runs the other."""
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", f"hydra.sweep.dir={sweep_dir}", *RUN, "logger=csv"]
    cmd += ["seed=0,1"]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 150
            while proc.poll() is None and time.monotonic() < deadline and not list(sweep_dir.rglob("last.ckpt")):
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    first = (tmp_path / "first.log").read_text()
    assert proc.returncode == 143, first[-3000:]
    assert "running the sweep command again continues the job" in first
    (record,) = read_ledger(sweep_dir / "ledger.jsonl")
    assert record["status"] == "interrupted" and record["overrides"]["seed"] == 0

    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "continuing the interrupted job from" in again.stdout + again.stderr
    records = read_ledger(sweep_dir / "ledger.jsonl")
    assert [(r["status"], r["overrides"]["seed"]) for r in records] == [("interrupted", 0), ("ok", 0), ("ok", 1)]
    reference = train(compose_cfg([*RUN, "logger=csv", "seed=0"], run_dir=tmp_path / "reference"))
    for key in COMPARED:
        assert records[1]["metrics"][key] == pytest.approx(reference["metrics"][key], abs=1e-5), key
