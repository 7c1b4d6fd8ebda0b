"""The sweep summary: leaderboard ranking, mean ± sd over seeds, heatmaps, W&B offline logging."""

from __future__ import annotations

import csv
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.sweep.ledger import LEDGER_NAME, append_record, make_record
from src.sweep.summarize import summarize
from src.sweep.table_layout import comparable_losses

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIRSTS, CORES, FINALS, SEEDS = ("autosome", "bhi"), ("bhi", "unlockdna"), ("autosome", "resnet"), (1, 2, 3)
REPO = Path(__file__).resolve().parents[1]


def _pearson(first: str, core: str, final: str, seed: int) -> float:
    """Distinct, deterministic values per combination (all different means)."""
    base = 0.5 + 0.1 * FIRSTS.index(first) + 0.04 * CORES.index(core) + 0.015 * FINALS.index(final)
    return base + 0.01 * seed * (1 + FIRSTS.index(first))


def _write_sweep(sweep_dir: Path, processing: tuple[str, ...] = ("autosome",)) -> dict[tuple, list[float]]:
    """A 2x2x2 grid x 3 seeds (x processing values) plus one failed combination."""
    ledger = sweep_dir / LEDGER_NAME
    expected: dict[tuple, list[float]] = {}
    for proc, first, core, final in itertools.product(processing, FIRSTS, CORES, FINALS):
        for seed in SEEDS:
            value = _pearson(first, core, final, seed) - 0.2 * processing.index(proc)
            expected.setdefault((first, core, final, proc), []).append(value)
            overrides = {"first": first, "core": core, "final": final, "processing": proc, "seed": seed}
            metrics = {"val/pearson": value, "val/spearman": value - 0.05, "val/mse": 1 - value}
            append_record(
                ledger, make_record(overrides=overrides, status="ok", metrics=metrics, params=1000, seconds=2.0)
            )
    for seed in SEEDS:
        overrides = {"first": "bhi", "core": "bhi", "final": "mlp", "processing": processing[0], "seed": seed}
        error = "Traceback (most recent call last):\n  File x\nRuntimeError: shape mismatch | (4, 8) vs (4, 9)"
        append_record(ledger, make_record(overrides=overrides, status="failed", error=error, seconds=0.5))
    return expected


def test_leaderboard_ranking_stats_and_files(tmp_path: Path) -> None:
    sweep = tmp_path / "my_sweep"
    expected = _write_sweep(sweep)
    result = summarize(sweep)

    rows = result["rows"]
    ranked = [r for r in rows if r["rank"] is not None]
    assert len(ranked) == 8 and len(rows) == 9
    means = [r["val/pearson_mean"] for r in ranked]
    assert means == sorted(means, reverse=True)
    assert [r["rank"] for r in ranked] == list(range(1, 9))
    for row in ranked:
        values = np.array(expected[(row["first"], row["core"], row["final"], row["processing"])])
        assert row["val/pearson_mean"] == pytest.approx(values.mean())
        assert row["val/pearson_sd"] == pytest.approx(values.std(ddof=1))
        assert row["val/mse_mean"] == pytest.approx((1 - values).mean())
        assert row["n_seeds"] == 3 and row["status"] == "3 ok" and row["params"] == 1000
        assert "seed" not in row["config"]
    failed = rows[-1]
    assert failed["rank"] is None and failed["final"] == "mlp" and failed["status"] == "3 failed"
    assert failed["error"].startswith("RuntimeError: shape mismatch")

    md = (sweep / "leaderboard.md").read_text()
    assert result["leaderboard_md"] == sweep / "leaderboard.md"
    assert "| rank | first | core | final | n_seeds |" in md  # processing is the same in every row ...
    assert "Constant settings (every row): `processing=autosome`." in md  # ... so it is one line above the table
    assert md.index(f"{ranked[0]['val/pearson_mean']:.4f} ± {ranked[0]['val/pearson_sd']:.4f}") < md.index(
        f"{ranked[-1]['val/pearson_mean']:.4f}"
    )
    assert "RuntimeError: shape mismatch \\| (4, 8)" in md  # pipes escaped, bottom section
    assert md.index("## Failed") > md.index(f"{ranked[-1]['val/pearson_mean']:.4f}")
    assert "nan" not in md.lower()

    with open(sweep / "leaderboard.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [row["core"] for row in table] == [r["core"] for r in rows]
    assert float(table[0]["val/pearson_mean"]) == pytest.approx(ranked[0]["val/pearson_mean"])
    assert table[-1]["rank"] == "" and table[-1]["val/pearson_mean"] == ""

    assert [p.name for p in result["heatmaps"]] == ["heatmap_val_pearson.png"]
    assert (sweep / "heatmap_val_pearson.png").read_bytes()[:8] == PNG_MAGIC


def test_single_seed_sd_is_blank_and_retries_use_latest(tmp_path: Path) -> None:
    ledger = tmp_path / LEDGER_NAME
    overrides = {"first": "a", "core": "b", "final": "c", "seed": 1}
    append_record(ledger, make_record(overrides=overrides, status="failed", error="oom"))
    append_record(ledger, make_record(overrides=overrides, status="ok", metrics={"val/pearson": 0.7}))
    (row,) = summarize(tmp_path)["rows"]
    assert row["status"] == "1 ok" and row["val/pearson_sd"] is None and row["error"] == ""
    md = (tmp_path / "leaderboard.md").read_text()
    assert "0.7000 |" in md and "nan" not in md.lower()
    with open(tmp_path / "leaderboard.csv", newline="") as fh:
        assert next(csv.DictReader(fh))["val/pearson_sd"] == ""


def test_one_heatmap_per_varying_override(tmp_path: Path) -> None:
    _write_sweep(tmp_path, processing=("autosome", "bhi"))
    result = summarize(tmp_path)
    names = sorted(p.name for p in result["heatmaps"])
    assert names == ["heatmap_val_pearson__processing=autosome.png", "heatmap_val_pearson__processing=bhi.png"]
    assert all((tmp_path / n).read_bytes()[:8] == PNG_MAGIC for n in names)
    assert len([r for r in result["rows"] if r["rank"]]) == 16


def test_lower_is_better_metric_sorts_ascending(tmp_path: Path) -> None:
    _write_sweep(tmp_path)
    rows = [r for r in summarize(tmp_path, metric="val/mse")["rows"] if r["rank"]]
    assert [r["val/mse_mean"] for r in rows] == sorted(r["val/mse_mean"] for r in rows)
    assert (tmp_path / "heatmap_val_mse.png").exists()


def test_missing_or_empty_ledger_exits_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as err:
        summarize(tmp_path)
    assert err.value.code == 2 and str(tmp_path / LEDGER_NAME) in str(err.value)
    (tmp_path / LEDGER_NAME).write_text("")
    with pytest.raises(SystemExit) as err:
        summarize(tmp_path)
    assert err.value.code == 2 and "no records" in str(err.value)


def test_cli_prints_markdown_and_reports_errors(tmp_path: Path) -> None:
    _write_sweep(tmp_path)
    cmd = [sys.executable, "-m", "src.sweep.summarize", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Leaderboard") and "leaderboard.csv" in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([*cmd[:-1], str(empty)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and str(empty / LEDGER_NAME) in done.stderr


def test_wandb_offline_logs_table_and_heatmaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline W&B run (about 1 s here, so not marked slow); never touches the network."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    _write_sweep(tmp_path)
    result = summarize(tmp_path, log_wandb=True)
    run_dir = Path(result["wandb_run_dir"])
    assert run_dir.parent == tmp_path / "wandb" and run_dir.name.startswith("offline-run-")
    assert list(run_dir.glob("*.wandb")), "no run log in the offline run folder"
    tables = list(run_dir.glob("files/media/table/leaderboard_*.table.json"))
    assert tables, sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))
    assert list(run_dir.glob("files/media/images/heatmap/*.png"))


def test_eight_family_heatmap_wraps_into_two_rows_of_four_panels(tmp_path: Path) -> None:
    """A 512-combination menu: 8 panels of 8 x 8, laid out 2 x 4 with every cell labelled."""
    from src.sweep.summarize import heatmap_figure

    teams = [f"team{i}" for i in range(8)]
    rows = [
        {"first": f, "core": c, "final": h, "val/pearson_mean": 0.5 + 0.001 * i, "error": ""}
        for i, (f, c, h) in enumerate(itertools.product(teams, teams, teams))
    ]
    fig = heatmap_figure(rows, "val/pearson", teams, teams, teams, "menu", 0.5, 1.0)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title().startswith("final = ")]
    assert len(panels) == 8
    assert len({round(ax.get_position().y0, 3) for ax in panels}) == 2  # two rows
    assert len({round(ax.get_position().x0, 3) for ax in panels}) == 4  # of four panels
    assert all(len(ax.texts) == 64 for ax in panels)
    width, height = fig.get_size_inches()
    assert width < 40 and height < 15
    path = tmp_path / "menu.png"
    fig.savefig(path, dpi=150)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_leaderboard_ranks_by_the_best_epoch_and_says_so(tmp_path: Path) -> None:
    """The ranking uses ``val/pearson_best`` (what picked the best checkpoint), not the last epoch."""
    ledger = tmp_path / LEDGER_NAME
    runs = {"autosome": (0.50, 0.90), "resnet": (0.70, 0.75)}  # (last epoch, best epoch)
    for first, (last, best) in runs.items():
        overrides = {"first": first, "core": "bhi", "final": "resnet", "seed": 0}
        metrics = {"val/pearson": last, "val/pearson_best": best}
        append_record(ledger, make_record(overrides=overrides, status="ok", metrics=metrics, params=10))
    result = summarize(tmp_path)
    ranked = [(r["first"], r["val/pearson_mean"]) for r in result["rows"]]
    assert ranked == [("autosome", 0.90), ("resnet", 0.75)]
    assert "`val/pearson` is each run's best epoch (`val/pearson_best`" in result["markdown"]
    # records without a best value: ranked by the last epoch, and the leaderboard says that instead
    (tmp_path / "last").mkdir()
    for first, (last, _) in runs.items():
        overrides = {"first": first, "core": "bhi", "final": "resnet", "seed": 0}
        record = make_record(overrides=overrides, status="ok", metrics={"val/pearson": last}, params=10)
        append_record(tmp_path / "last" / LEDGER_NAME, record)
    result = summarize(tmp_path / "last")
    assert [r["first"] for r in result["rows"]] == ["resnet", "autosome"]
    assert "`val/pearson` is the last epoch's value" in result["markdown"]


def test_long_heatmap_titles_are_wrapped_to_the_figure() -> None:
    from src.sweep.summarize import wrap_title

    overrides = ", ".join(f"datamodule.option_{i}=value_{i}" for i in range(20))
    title = f"sweep: mean val/pearson over seeds ({overrides})\nsecond line"
    wrapped = wrap_title(title, width_inches=8.0)
    lines = wrapped.split("\n")
    assert len(lines) > 3 and max(len(line) for line in lines) <= 80 and lines[-1] == "second line"
    assert wrapped.replace("\n", " ").replace("  ", " ") == title.replace("\n", " ")
    assert wrap_title("short", 8.0) == "short"


def _record(ledger: Path, overrides: dict, metrics: dict, status: str = "ok") -> None:
    append_record(ledger, make_record(overrides=overrides, status=status, metrics=metrics, params=10, seconds=1.0))


def test_leaderboard_columns_are_the_swept_axes_and_constants_are_one_line(tmp_path: Path) -> None:
    """Constant overrides go above the table; each metric names its epoch; losses of different objectives drop."""
    ledger = tmp_path / LEDGER_NAME
    for first, final, lr, seed in itertools.product(("autosome", "bhi"), ("autosome", "bhi"), (0.1, 0.01), (0, 1)):
        value = 0.5 + 0.1 * (first == "bhi") + lr + 0.01 * seed
        overrides = {"first": first, "core": "bhi", "final": final, "recipe.lr": lr, "seed": seed}
        overrides.update({"data": "dream", "data.path": "train.txt", "recipe.steps_per_epoch": 40})
        metrics = {"val/pearson": value - 0.05, "val/pearson_best": value, "val/loss": 1 - value, "val/mse": 2.0}
        _record(ledger, overrides, metrics)
    md = summarize(tmp_path)["markdown"]
    header = next(line for line in md.splitlines() if line.startswith("| rank"))
    assert header == (
        "| rank | first | final | recipe.lr | n_seeds | status | val/pearson (best epoch) | val/mse (last epoch) "
        "| params | seconds |"
    )
    assert (
        "Constant settings (every row): `core=bhi`, `data=dream`, `data.path=train.txt`, "
        "`recipe.steps_per_epoch=40`." in md
    )
    assert "`val/loss` left out: the final blocks train different (or unknown) objectives (autosome: soft-bin" in md
    with open(tmp_path / "leaderboard.csv", newline="") as fh:  # the CSV keeps every column
        assert {"data.path", "val/loss_mean", "val/pearson_best_mean"} <= set(next(csv.DictReader(fh)))

    # one final block (one objective): its loss is comparable and stays, with the epoch it comes from
    (tmp_path / "one").mkdir()
    for first, seed in itertools.product(("autosome", "bhi"), (0, 1)):
        overrides = {"first": first, "core": "bhi", "final": "resnet", "seed": seed}
        _record(tmp_path / "one" / LEDGER_NAME, overrides, {"val/pearson": 0.5 + seed / 10, "val/loss": 0.3})
    md = summarize(tmp_path / "one")["markdown"]
    assert "| rank | first | n_seeds | status | val/pearson (last epoch) | val/loss (last epoch) |" in md
    assert "`core=bhi`, `final=resnet`" in md and "left out" not in md
    assert comparable_losses([{"final": "my_head"}, {"final": "my_head"}])[0]  # one final, even outside conf/final
    swept_loss = [{"final": "bhi", "final.objective.loss": loss} for loss in ("mse", "huber")]
    assert not comparable_losses(swept_loss, ["final.objective.loss"])[0]  # an override changes the objective


def test_heatmap_cell_shows_n_and_marks_a_seed_spread_wider_than_the_colour_step(tmp_path: Path) -> None:
    from src.sweep.summarize import heatmap_figure

    ledger = tmp_path / LEDGER_NAME
    values = {("a", "x"): (0.0, 0.4), ("a", "y"): (0.50, 0.51), ("b", "x"): (0.80, 0.81), ("b", "y"): (0.6, 0.6)}
    for (first, core), pair in values.items():
        for seed, value in enumerate(pair):
            _record(ledger, {"first": first, "core": core, "final": "f", "seed": seed}, {"val/pearson": value})
    rows = summarize(tmp_path)["rows"]
    fig = heatmap_figure(rows, "val/pearson", ["a", "b"], ["x", "y"], ["f"], "t", 0.2, 0.805)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert {"0.20", "0.51", "0.81", "0.60"} <= set(texts)  # the means
    assert "n=2 ±0.28" in texts  # sd 0.283 > colour step (0.805 - 0.2) / 10: marked
    assert texts.count("n=2") == 3 and sum("±" in t for t in texts) == 1  # the narrow cells show only n
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "n = ok seeds" in legend and "colour step (0.0605" in legend
