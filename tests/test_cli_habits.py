"""Command-line habits: values rejected at composition, Lightning's trainer keys, one line per log record,
``dry_run`` leaves no folder, ``resume=true`` without ``hydra.run.dir`` names the folder to pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.entry import run_task
from src.train_task import train
from tests.helpers import FAST, compose_cfg
from tests.helpers import train_cli as cli

TINY = [
    "first=resnet",
    "core=resnet",
    "final=resnet",
    "first.block.out_channels=8",
    "core.block.widths=[8,8,8,8]",
    "core.block.depths=[1,1,1,1]",
]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("recipe.batch_size=0", "recipe.batch_size=0 must be >= 1"),
        ("recipe.epochs=-2", "recipe.epochs=-2 must be >= 1"),
        ("datamodule.val_fold=10", "datamodule.val_fold=10 must be in [0, datamodule.n_folds=10)"),
        ("trainer.precision=bf17", "trainer.precision='bf17' is not a Lightning precision; use one of"),
        ("processing.on_long=crop", "processing.on_long must be one of error, trim, drop (got 'crop')"),
    ],
)
def test_bad_values_are_rejected_at_composition_naming_the_key(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = compose_cfg([*FAST, *TINY, override], run_dir=run_dir)
    with pytest.raises(SystemExit) as exit_info:
        run_task(train, cfg)
    assert exit_info.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
    assert list(run_dir.iterdir()) == []


def test_lightning_trainer_keys_without_plus_and_each_log_line_once(tmp_path: Path) -> None:
    args = [*TINY, "data.source.n=400", "recipe.batch_size=16", "logger=csv", "trainer.enable_progress_bar=false"]
    args += ["trainer.max_steps=3", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    result = cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["global_step"] == 3 and summary["epochs"] == 2  # 2 batches per epoch, stopped after 3 steps
    out = (result.stdout + result.stderr).splitlines()
    for fragment in ("GPU available", "`Trainer.fit` stopped: `max_steps=3` reached", "Trainable params"):
        assert sum(fragment in line for line in out) == 1, (fragment, out)


def test_fast_dev_run_without_plus(tmp_path: Path) -> None:
    summary = train(compose_cfg([*FAST, *TINY, "trainer.fast_dev_run=true"], run_dir=tmp_path / "run"))
    assert summary["status"] == "ok" and summary["global_step"] == 1


def test_dry_run_leaves_no_folder(tmp_path: Path) -> None:
    result = cli([*TINY, "dry_run=true", "logger=none"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("params: ")
    assert list(tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))


def test_resume_without_run_dir_names_the_folder_to_pass(tmp_path: Path) -> None:
    old = tmp_path / "outputs" / "2020-01-01" / "10-00-00_resnet-resnet-resnet"
    (old / "checkpoints").mkdir(parents=True)
    (old / "checkpoints" / "last.ckpt").write_bytes(b"x")
    before = sorted(tmp_path.rglob("*"))
    result = cli([*TINY, "resume=true", "logger=none"], tmp_path)
    assert result.returncode == 2
    err = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert err == [
        f"error: resume=true resumes the run in hydra.run.dir, which was not given: add hydra.run.dir={old}"
    ], result.stderr
    assert sorted(tmp_path.rglob("*")) == before  # no new, empty run folder
