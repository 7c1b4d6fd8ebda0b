"""The study's answer end to end: test-suite scores in the ledger, --metric, the aux-weight axis in the effects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from src.sweep.job import run_ledgered
from src.sweep.ledger import LEDGER_NAME, read_ledger
from src.sweep.summarize import main as summarize_main
from src.sweep.summarize import summarize
from tests.helpers import compose_cfg, make_ctx, run_sweep, shared_file, small_cfg


def test_test_suite_scores_are_recorded_as_test_metrics(tmp_path):
    ctx = make_ctx(tmp_path)
    summary = {
        "metrics": {"val/pearson": 0.5},
        "params": 10,
        "test": {"pearson_score": 0.25, "spearman_score": 0.4, "partial": False, "folder": "/x"},
    }
    run_ledgered(lambda cfg: summary, small_cfg(), ctx)
    (record,) = read_ledger(ctx.ledger)
    assert record["metrics"] == {"val/pearson": 0.5, "test/pearson_score": 0.25, "test/spearman_score": 0.4}
    result = summarize(ctx.sweep_dir, metric="test/pearson_score")
    assert result["rows"][0]["test/pearson_score_mean"] == 0.25 and result["rows"][0]["rank"] == 1
    assert "Ranked by mean `test/pearson_score` (DREAM test suite, challenge-weighted score)" in result["markdown"]
    assert "test/spearman_score" in (ctx.sweep_dir / "leaderboard.csv").read_text().splitlines()[0]


def test_unknown_metric_names_the_recorded_ones(tmp_path, capsys):
    ctx = make_ctx(tmp_path)
    run_ledgered(lambda cfg: {"metrics": {"val/pearson": 0.5}}, small_cfg(), ctx)
    with pytest.raises(SystemExit) as err:
        summarize_main([str(ctx.sweep_dir), "--metric", "test/pearson"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "--metric test/pearson" in message and "recorded: val/pearson" in message


@pytest.mark.slow
def test_aux_weight_sweep_with_test_data_lands_in_ledger_leaderboard_and_effects(tiny_conf, tmp_path):  # noqa: F811

    test_dir = shared_file("dream_test_format")
    sweep_dir = tmp_path / "study"
    axes = ["first=autosome", "core=autosome", "final=autosome", "aux_weights.recon=0,1", "seed=0,1"]
    run_sweep(tiny_conf, sweep_dir, *axes, f"test_data={test_dir}", "logger=none")
    records = read_ledger(sweep_dir / LEDGER_NAME)
    n_sequences = len((test_dir / "filtered_test_data_with_MAUDE_expression.txt").read_text().split()) // 2
    assert sorted(r["status"] for r in records) == ["ok"] * 4
    for record in records:
        assert record["overrides"]["aux_weights.recon"] in (0, 1)
        saved = json.loads((Path(record["run_dir"]) / "metrics.json").read_text())
        assert record["metrics"]["test/pearson_score"] == pytest.approx(saved["test"]["pearson_score"])
        assert np.load(saved["test"]["predictions"]).shape == (n_sequences, 1)
    # validation by default, and it says so; every recorded test metric is a column
    board = (sweep_dir / "leaderboard.md").read_text()
    assert "Ranked by mean `val/pearson` (validation split)" in board and "test/pearson_score" in board
    result = summarize(sweep_dir, metric="test/pearson_score", n_boot=50)
    assert "Ranked by mean `test/pearson_score` (DREAM test suite" in result["markdown"]
    best = next(r for r in result["rows"] if r["rank"] == 1)
    by_weight: dict = {}
    for r in records:
        by_weight.setdefault(r["overrides"]["aux_weights.recon"], []).append(r["metrics"]["test/pearson_score"])
    assert best["test/pearson_score_mean"] == pytest.approx(max(np.mean(v) for v in by_weight.values()))
    effects = result["effects"]
    assert effects.factors == ["aux_weights.recon"] and effects.metric == "test/pearson_score"
    other = effects.paired.iloc[1]
    assert other["ci_low"] is not None and other["boot_low"] <= other["boot_diff"] <= other["boot_high"]
    text = (sweep_dir / "effects.md").read_text()
    assert "| aux_weights.recon | 0 |" in text and "95% interval (sequences)" in text


def test_aux_weight_is_an_ordinary_override():

    cfg = compose_cfg(["aux_weights.recon=0.5"])
    assert OmegaConf.to_container(cfg.aux_weights) == {"recon": 0.5}
