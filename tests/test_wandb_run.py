"""The W&B run of a training run is complete and honest: parameter count and composed graph in it, a
non-zero exit state and ``"status": "interrupted"`` after Ctrl-C, and ``resume=true`` continues the same run."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import lightning as L
import pytest

from src import train_task
from src.train_task import train
from tests.helpers import FAST, TINY_ONEHOT_RESNET, compose_cfg, read_wandb_records


class CtrlC(L.Callback):
    """Presses Ctrl-C at the first batch of the second epoch."""

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def wandb_runs(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))


def test_interrupted_run_is_recorded_and_resumes_the_same_wandb_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    overrides = [o for o in FAST if not o.startswith("logger=")] + [
        *TINY_ONEHOT_RESNET,
        "logger=wandb",
        "recipe.epochs=2",
    ]
    plain = train_task.build_callbacks
    monkeypatch.setattr(train_task, "build_callbacks", lambda cfg, folder: [*plain(cfg, folder), CtrlC()])
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_info:  # Lightning's graceful shutdown exits with status 1
            train(compose_cfg(overrides, run_dir=run_dir))
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores further Ctrl-C during its shutdown
    assert exit_info.value.code not in (0, None)
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs"] == 1

    (first,) = wandb_runs(run_dir)
    records = read_wandb_records(first)
    exits = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert exits and exits[-1].exit_code != 0
    config = {
        item.key: json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    params = summary["params"]
    assert config["model/params"] == params
    assert config["model/graph"].splitlines()[-1] == f"params: {params}"

    monkeypatch.undo()
    resumed = train(compose_cfg([*overrides, "resume=true"], run_dir=run_dir))
    assert resumed["status"] == "ok" and resumed["epochs"] == 2
    runs = wandb_runs(run_dir)
    assert len(runs) == 2 and runs[0].name == runs[1].name  # run-<id>.wandb: the same W&B run id, resumed
