"""bench/precision_check.py: the smoke run writes its table, CSV, JSON and heatmap; the budget cuts runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers import ROOT, load_bench


@pytest.fixture(scope="module")
def check():
    return load_bench("precision_check")


def test_menu_is_read_from_the_configs(check) -> None:
    families = check.menu()
    for group in ("first", "core", "final"):
        assert families[group] == sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
        assert {"autosome", "bhi", "resnet", "unlockdna"} <= set(families[group])


def test_smoke_run_writes_every_output(check, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main(["--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("precision check: 1/1 combinations within 0.03") or out[-1].startswith(
        "precision check: 0/1 combinations within 0.03"
    )
    payload = json.loads((tmp_path / "precision_smoke.json").read_text())
    assert [(r["precision"], r["status"]) for r in payload["runs"]] == [("32-true", "ok"), ("bf16-mixed", "ok")]
    assert all(r["steps"] == 4 for r in payload["runs"])
    (row,) = payload["rows"]
    assert row["diff"] == pytest.approx(row["bf16_pearson"] - row["fp32_pearson"])
    with open(tmp_path / "precision_smoke.csv", newline="") as fh:
        (csv_row,) = list(csv.DictReader(fh))
    assert (csv_row["first"], csv_row["core"], csv_row["final"]) == ("bhi", "bhi", "bhi")
    assert "| bhi | bhi | bhi |" in (tmp_path / "precision_smoke.md").read_text()
    assert (tmp_path / "precision_smoke_diff.png").read_bytes()[:4] == b"\x89PNG"


def test_budget_stops_starting_runs(check, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main(["--smoke", "--budget-s", "0.01", "--out", str(tmp_path), "--tag", "cut"]) == 0
    runs = json.loads((tmp_path / "precision_cut.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["ok", "not run"]


def test_unknown_family_is_one_clear_error(check, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main(["--core", "nope", "--out", str(tmp_path)]) == 2
    assert "--core: unknown core families ['nope']" in capsys.readouterr().out


def test_collapsed_runs_are_written_with_null_pearson(check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def collapsed(job):
        keys = ("first", "core", "final", "seed", "precision")
        return {k: job[k] for k in keys} | {
            "status": "collapsed",
            "metrics": {"val/pearson": float("nan")},
            "seconds": 0.1,
        }

    monkeypatch.setattr(check, "run_one", collapsed)
    assert check.main(["--smoke", "--out", str(tmp_path), "--tag", "nan"]) == 0
    payload = json.loads((tmp_path / "precision_nan.json").read_text())
    assert [r["metrics"]["val/pearson"] for r in payload["runs"]] == [None, None]
    (row,) = payload["rows"]
    assert row["diff"] is None and row["outcome"] == "collapsed" and row["fp32_status"] == "1 collapsed"


def test_combos_pick_combinations_and_noise_is_judged(check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--combos runs only the named triples; the difference is judged against twice its seed standard error."""
    values = {"32-true": [0.50, 0.52, 0.54], "bf16-mixed": [0.55, 0.57, 0.59]}  # +0.05, seed SD 0.02

    def fake(job):
        keys = ("first", "core", "final", "seed", "precision")
        r = values[job["precision"]][job["seed"]]
        return {k: job[k] for k in keys} | {"status": "ok", "metrics": {"val/pearson": r}, "seconds": 0.1}

    monkeypatch.setattr(check, "run_one", fake)
    args = ["--combos", "bhi-resnet-autosome", "--seeds", "0,1,2", "--out", str(tmp_path), "--tag", "c"]
    assert check.main(args) == 0
    (row,) = json.loads((tmp_path / "precision_c.json").read_text())["rows"]
    assert (row["first"], row["core"], row["final"]) == ("bhi", "resnet", "autosome")
    assert row["diff"] == pytest.approx(0.05) and row["within"] is False
    assert row["noise"] == pytest.approx(2 * (2 * 0.02**2 / 3) ** 0.5) and row["within_noise"] is False
    assert check.main(["--combos", "bhi-resnet", "--out", str(tmp_path)]) == 2


def test_reduced_puts_each_combinations_widths_into_its_runs(
    check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--reduced: every run and range test of a combination composes at its reduced widths; dream_cnn is a triple."""
    jobs: list[dict] = []

    def record(job):
        jobs.append(job)
        keys = ("first", "core", "final", "seed", "precision")
        return {k: job[k] for k in keys} | {"status": "ok", "metrics": {"val/pearson": 0.5}, "seconds": 0.1}

    def peak(job):
        jobs.append({**job, "precision": "32-true"})
        return {"peak": 0.01}

    monkeypatch.setattr(check, "run_one", record)
    monkeypatch.setattr(check, "fair_peak", peak)
    args = ["--combos", "bhi-bhi-bhi,dream_cnn", "--seeds", "0", "--precisions", "32-true", "--out", str(tmp_path)]
    assert check.main([*args, "--tag", "full"]) == 0
    full = [check.compose(check._overrides(job)) for job in jobs]
    jobs.clear()
    assert check.main([*args, "--reduced", "--fair", "--tag", "reduced"]) == 0
    assert len(jobs) == 4  # two range tests, two runs
    for job in jobs:
        cfg = check.compose(check._overrides(job))
        assert cfg.first.block.out_channels == 32  # BHI's first block in both
        if job["core"] == "bhi":
            assert (cfg.core.block.hidden, cfg.core.block.out_channels) == (16, 32)
            assert list(cfg.final.block.hidden) == [16, 16]
        else:
            assert (job["first"], job["core"], job["final"]) == ("bhi", "autosome", "autosome")
            assert list(cfg.core.block.stage_widths) == [32, 16]
    assert {cfg.first.block.out_channels for cfg in full} == {512}  # without --reduced: the configured widths
    payload = json.loads((tmp_path / "precision_reduced.json").read_text())
    assert payload["settings"]["reduced"] is True and payload["cpu_model"]
    assert payload["reduced_widths"]["bhi-autosome-autosome"] == [
        "first.block.out_channels=32",
        "core.block.stage_widths=[32,16]",
    ]
    assert "- bhi-autosome-autosome: first.block.out_channels=32" in (tmp_path / "precision_reduced.md").read_text()
    assert json.loads((tmp_path / "precision_full.json").read_text())["reduced_widths"] == {}
