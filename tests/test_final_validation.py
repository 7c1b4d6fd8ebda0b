"""A run always validates before it ends: ``trainer.max_steps`` inside an epoch validates at the last step (metrics,
best checkpoint, the test split scored with it); a stop at an epoch's end validates once, not twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import pytest

import src.train_task as train_task
from src.train_task import train
from tests.helpers import compose_cfg, shared_file, tiny_bhi_resnet, tiny_dropout_run

# 17 steps per epoch (600 reads, batches of 32)
RUN = tiny_dropout_run(n=600, epochs=2)


class CountValidations(L.Callback):
    """The global steps at which a validation epoch ended (sanity checks left out)."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.steps.append(trainer.global_step)


def train_counting(cfg: Any) -> tuple[dict[str, Any], list[int]]:
    counter = CountValidations()
    original = train_task.build_callbacks
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_task, "build_callbacks", lambda c, d: [*original(c, d), counter])
        return train(cfg), counter.steps


def test_max_steps_inside_an_epoch_validates_at_the_last_step(tmp_path: Path) -> None:
    summary, validated = train_counting(compose_cfg([*RUN, "trainer.max_steps=5"], run_dir=tmp_path))
    assert summary["global_step"] == 5 and validated == [5]
    assert {"val/pearson", "val/loss", "val/mse"} <= set(summary["metrics"])
    assert summary["best_score"] == pytest.approx(summary["metrics"]["val/pearson"])
    assert summary["best_checkpoint"] and Path(summary["best_checkpoint"]).exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"] == summary["metrics"]


def test_a_stop_at_an_epoch_end_validates_once(tmp_path: Path) -> None:
    summary, validated = train_counting(compose_cfg([*RUN, "trainer.max_steps=17"], run_dir=tmp_path))
    assert summary["global_step"] == 17 and validated == [17]
    assert summary["best_checkpoint"]


def test_the_test_split_is_scored_with_the_checkpoint_of_the_last_step(tmp_path: Path) -> None:
    folder = shared_file("drosophila_starr", "sample_train.txt").parent
    overrides = [
        "data=drosophila_starr",
        f"data.path={folder}",
        *tiny_bhi_resnet(final="autosome"),
        "recipe.epochs=1",
        "recipe.batch_size=64",
        "recipe.steps_per_epoch=8",
        "trainer.max_steps=3",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    summary, validated = train_counting(compose_cfg(overrides, run_dir=tmp_path))
    assert summary["global_step"] == 3 and validated == [3]
    assert summary["best_checkpoint"] and summary["test_checkpoint"] == summary["best_checkpoint"]
    assert {"test/pearson", "val/pearson"} <= set(summary["metrics"])
