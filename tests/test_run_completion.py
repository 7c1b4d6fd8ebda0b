"""Resuming a finished run changes nothing (one line, exit 0, every file byte for byte); with more epochs
it trains on and ``metrics.json`` keeps the earlier summary under ``previous``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import pytest

import src.train_task as train_task
from src.train_task import train
from tests.helpers import compose_cfg, tiny_bhi_resnet, tiny_dropout_run, tiny_run, train_cli

# two epochs of two steps, W&B offline (its run files are part of what must stay unchanged)
RUN = [*tiny_bhi_resnet(), *tiny_run(logger=None), "recipe.epochs=2"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resuming_a_finished_run_changes_nothing_and_more_epochs_keep_the_history(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # a process of its own: W&B's service writes its run logs until its process ends, so the folder is final only then
    first = train_cli([*RUN, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    finished = json.loads((run_dir / "metrics.json").read_text())
    assert finished["status"] == "ok" and finished["epochs"] == 2 and finished["metrics"]
    before = _files(run_dir)

    again = train_cli([*RUN, "resume=true", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    lines = [line for line in (again.stdout + again.stderr).splitlines() if line.strip()]
    assert lines == ["run already complete (epoch 2 of 2); nothing to do"]
    assert _files(run_dir) == before  # no csv/version_1, no second W&B run, metrics.json untouched

    longer = train(compose_cfg([*RUN, "recipe.epochs=3", "resume=true"], run_dir=run_dir))
    assert longer["status"] == "ok" and longer["epochs"] == 3 and longer["global_step"] == 6
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["metrics"]["val/pearson"] == longer["metrics"]["val/pearson"]
    (earlier,) = summary["previous"]
    assert earlier["epochs"] == 2 and earlier["metrics"] == finished["metrics"]
    assert earlier["best_score"] == finished["best_score"]
    assert (run_dir / "csv" / "version_0" / "metrics.csv").read_bytes() == before["csv/version_0/metrics.csv"]


class FirstTargets(L.Callback):
    """The global step and first target of every training batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, float]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.batches.append((trainer.global_step, float(batch["y"][0, 0])))


def train_recording(overrides: list[str], run_dir: Path) -> tuple[dict[str, Any], list[tuple[int, float]]]:
    recorder = FirstTargets()
    original = train_task.build_callbacks
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_task, "build_callbacks", lambda c, d: [*original(c, d), recorder])
        return train(compose_cfg([*tiny_dropout_run(n=600, epochs=2), *overrides], run_dir=run_dir)), recorder.batches


def test_a_higher_max_steps_continues_inside_the_epoch_with_the_next_batches(tmp_path: Path) -> None:
    """max_steps=5 stops inside epoch 0 (17 steps); max_steps=10 then trains steps 5-9 on that epoch's next batches."""
    first, _ = train_recording(["trainer.max_steps=5"], tmp_path / "run")
    longer, resumed = train_recording(["trainer.max_steps=10", "resume=true"], tmp_path / "run")
    _, straight = train_recording(["trainer.max_steps=10"], tmp_path / "straight")
    assert [step for step, _ in resumed] == [5, 6, 7, 8, 9]
    assert resumed == straight[5:]  # the batches an uninterrupted run trains at those steps
    assert longer["global_step"] == 10 and longer["metrics"]
    assert longer["previous"][-1]["global_step"] == 5 and longer["previous"][-1]["metrics"] == first["metrics"]
