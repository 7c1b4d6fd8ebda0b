"""The metric registry and the monitored metric (``monitor:``): one default, read everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from src.errors import ConfigError
from src.lit_modules.metrics import (
    DEFAULT_METRICS,
    DEFAULT_MONITOR,
    build_metrics,
    check_monitor,
    higher_is_better,
    metric_names,
    monitor_of,
)
from src.sweep.ledger import LEDGER_NAME, append_record, make_record
from src.sweep.summarize import summarize
from src.train_task import train
from tests.helpers import FAST, ROOT, compose_cfg


def test_defaults_live_in_one_place() -> None:
    cfg = compose_cfg([])
    assert monitor_of(cfg) == (DEFAULT_MONITOR, "max") == ("val/pearson", "max")
    for path in sorted((ROOT / "conf" / "final").glob("*.yaml")):
        assert "metrics" not in yaml.safe_load(path.read_text()), f"{path}: the default metrics live in code"
    assert metric_names(cfg.final) == list(DEFAULT_METRICS)


def test_unknown_metric_and_bad_monitor_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"final.metrics: unknown metric\(s\) \['r2'\]"):
        build_metrics(["pearson", "r2"], 1)
    with pytest.raises(ConfigError, match="monitor.mode: 'up' is not one of max, min"):
        monitor_of({"monitor": {"metric": "val/mse", "mode": "up"}})
    with pytest.raises(ConfigError, match="monitor.metric: 'val/r2' is not logged"):
        check_monitor("val/r2", ["pearson", "mse"])
    check_monitor("val/loss", ["pearson"])


def test_directions() -> None:
    assert higher_is_better("val/pearson") and higher_is_better("val/spearman_best")
    assert not higher_is_better("val/mse") and not higher_is_better("val/loss") and not higher_is_better("test/mae")


def test_monitor_drives_the_best_checkpoint_and_the_summary(tmp_path: Path) -> None:
    cfg = compose_cfg(
        [*FAST, "recipe.epochs=2", "monitor.metric=val/mse", "monitor.mode=min", "first=resnet", "core=resnet"]
        + ["final=resnet", "processing=onehot", "first.block.out_channels=8", "core.block.widths=[8,8,8,8]"]
        + ["core.block.depths=[1,1,1,1]"],
        run_dir=tmp_path,
    )
    summary = train(cfg)
    assert summary["monitor"] == "val/mse"
    best = [p.name for p in (tmp_path / "checkpoints").glob("best-*.ckpt")]
    assert len(best) == 1 and best[0].startswith("best-epoch") and "-mse" in best[0], best
    assert summary["best_score"] == pytest.approx(float(best[0].rsplit("mse", 1)[1][: -len(".ckpt")]), abs=1e-4)
    assert json.loads((tmp_path / "metrics.json").read_text())["best_score"] == summary["best_score"]


def test_a_monitor_the_run_does_not_log_fails_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="monitor.metric"):
        train(compose_cfg([*FAST, "monitor.metric=val/r2"], run_dir=tmp_path))
    assert not any(tmp_path.iterdir())


def test_a_plateau_schedule_on_an_unlogged_metric_fails_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recipe.scheduler.monitor: 'val/r2'"):
        train(compose_cfg([*FAST, "recipe=camformers", "recipe.scheduler.monitor=val/r2"], run_dir=tmp_path))
    assert not any(tmp_path.iterdir())


def test_leaderboard_reports_every_metric_in_the_ledger_and_follows_the_mode(tmp_path: Path) -> None:
    ledger = tmp_path / LEDGER_NAME
    for core, mse, r2 in (("a", 0.3, 0.5), ("b", 0.1, 0.4)):
        overrides = {"first": "x", "core": core, "final": "y", "seed": 0}
        metrics = {"val/mse": mse, "test/r2": r2}
        append_record(ledger, make_record(overrides=overrides, status="ok", metrics=metrics))
    result = summarize(tmp_path, metric="val/mse", mode="min")
    assert [r["core"] for r in result["rows"]] == ["b", "a"]
    assert "test/r2_mean" in result["rows"][0]
    header = (tmp_path / "leaderboard.csv").read_text().splitlines()[0].split(",")
    assert header.index("val/mse_mean") < header.index("test/r2_mean")
    assert "| val/mse (last epoch) | test/r2 (best checkpoint) |" in result["markdown"]
    assert "lower is better" in result["markdown"]
    flipped = summarize(tmp_path, metric="val/mse", mode="max")
    assert [r["core"] for r in flipped["rows"]] == ["a", "b"]
