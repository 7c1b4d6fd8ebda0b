"""End-to-end training: learnability, outputs of a run, loggers, the CLI's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.train_task import train
from tests.helpers import FAST, ROOT, compose_cfg, tiny_run

SMALL_AUTOSOME = ["first.block.out_channels=64", "core.block.stage_widths=[32,32]"]


def test_synthetic_function_is_learned(tmp_path: Path) -> None:
    """A few hundred steps on the embedded synthetic data reach validation Pearson > 0.5."""
    cfg = compose_cfg(
        [
            "data.source.n=3000",
            "recipe.epochs=3",
            "recipe.batch_size=64",
            "recipe.lr=0.01",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "trainer.num_sanity_val_steps=0",
            "logger=csv",
            *SMALL_AUTOSOME,
        ],
        run_dir=tmp_path,
    )
    summary = train(cfg)
    assert 200 <= summary["global_step"] <= 300
    assert summary["metrics"]["val/pearson"] > 0.5, summary["metrics"]
    assert summary["metrics"]["val/spearman"] > 0.5


def test_run_folder_holds_checkpoints_metrics_and_logs(tmp_path: Path) -> None:
    cfg = compose_cfg([*FAST, "logger=wandb", "recipe.epochs=2", *SMALL_AUTOSOME], run_dir=tmp_path)
    summary = train(cfg)
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(name.startswith("best-epoch") for name in ckpts)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(summary))
    assert set(metrics["metrics"]) >= {"val/pearson", "val/spearman", "val/mse", "val/loss"}
    assert metrics["params"] > 0 and metrics["epochs"] == 2
    assert (tmp_path / "config.yaml").exists()
    assert (tmp_path / "csv" / "version_0" / "metrics.csv").exists()
    # W&B ran offline into the run folder, under the combination's name
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    import wandb

    assert wandb.run is None  # finished after the job
    assert cfg.logger.wandb.name == "autosome-autosome-autosome"


def test_dream_file_trains_with_team_processing(tmp_path: Path, dream_sample: Path) -> None:
    cfg = compose_cfg(
        [*tiny_run(data=False), "data=dream", f"data.path={dream_sample}"]
        + ["first=autosome", "core=resnet", "final=autosome", "first.block.out_channels=8"]
        + ["core.block.widths=[8,8,8,8]", "core.block.depths=[1,1,1,1]"],
        run_dir=tmp_path,
    )
    summary = train(cfg)
    assert summary["global_step"] == 2 and summary["combination"] == "autosome-resnet-autosome"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={cwd}/run", "logger=none"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_unknown_block_lists_available_ones(tmp_path: Path) -> None:
    result = run_cli("core=transformerx", "dry_run=true", cwd=tmp_path)
    assert result.returncode == 2
    assert "core=transformerx: no such core option" in result.stderr
    assert "autosome" in result.stderr and "resnet" in result.stderr


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("ACGTACGTACGTACGTACGTACGT\t1.0\nACGTACGTACGTACGTACGTAXGT\t2.0\n", 2, "letter 'X'"),
        ("ACGTACGTACGTACGTACGTACGT\t1.0\nACGTACGTACGTACGTACGTACGT\tNaN\n", 2, "must be finite"),
        ("ACGTACGTACGTACGTACGTACGT\n", 1, "missing expression column"),
    ],
)
def test_bad_data_file_gives_one_line_with_file_and_line(tmp_path: Path, content: str, line: int, fragment: str):
    path = tmp_path / "train.txt"
    path.write_text(content)
    result = run_cli("data=dream", f"data.path={path}", cwd=tmp_path)
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and f"{path}:{line}:" in lines[0] and fragment in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "config.yaml").exists()  # nothing written before validation


def test_missing_data_path_is_named(tmp_path: Path) -> None:
    result = run_cli("data=dream", cwd=tmp_path)
    assert result.returncode == 2
    assert "data.path" in result.stderr and "Traceback" not in result.stderr


def test_test_data_scores_the_trained_model_after_training(tmp_path: Path) -> None:
    from tests.helpers import shared_file

    test_dir = shared_file("dream_test_format")
    cfg = compose_cfg([*FAST, f"test_data={test_dir}", *SMALL_AUTOSOME], run_dir=tmp_path)
    summary = train(cfg)
    scores = json.loads((tmp_path / "evaluation" / "scores.json").read_text())
    assert summary["test"]["pearson_score"] == pytest.approx(scores["pearson_score"])
    # the test-format folder's paired subsets hold 2 pairs each: not scored, so the score covers part of the suite
    assert scores["not_scored"] and scores["partial"] is True
    assert json.loads((tmp_path / "metrics.json").read_text())["test"]["partial"] is True
    assert len(list((tmp_path / "evaluation").glob("scatter_*.png"))) == 9
