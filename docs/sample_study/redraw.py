"""Redraw the sample study's leaderboard and heatmap with today's summarizer, from its leaderboard.csv.

    python docs/sample_study/redraw.py [--out docs/sample_study]

The sample study (64 combinations of four families on 10,000 synthetic reads, one seed, an H100 run of
25 November 2026) kept only its ``leaderboard.csv``, not its ``ledger.jsonl``. Every row of that table
is one job (one seed), so the ledger is rebuilt from it: one record per row with the row's overrides,
status, metrics, parameter count, time, peak memory and error. A run the old code recorded as ``ok``
with no validation Pearson (it predicted a constant, so Pearson is undefined) is recorded as
``collapsed``, the status today's training gives such a run. Then :func:`src.sweep.summarize.summarize`
writes ``leaderboard.md`` and ``heatmap_val_pearson.png`` into ``--out``; ``leaderboard.csv`` (the
source) is left as it is.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root, for src

from src.sweep.ledger import LEDGER_NAME, append_record, make_record  # noqa: E402
from src.sweep.summarize import summarize  # noqa: E402

METRICS = ("val/pearson", "val/spearman", "val/mse")
COLLAPSED = "constant validation predictions (Pearson undefined)"


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


def overrides_of(config: str) -> dict[str, object]:
    """``core=autosome,data.source.n=10000,...`` -> overrides (numbers as int), plus the single seed 0."""
    overrides: dict[str, object] = {}
    for part in config.split(","):
        name, value = part.split("=", 1)
        overrides[name] = int(value) if value.isdigit() else value
    overrides["seed"] = 0
    return overrides


def record_of(row: dict[str, str]) -> dict:
    """The ledger record of one leaderboard row (one job)."""
    status = row["status"].split(" ", 1)[1]  # "1 ok" -> "ok"
    metrics = {m: _number(row[f"{m}_mean"]) for m in METRICS}
    metrics = {m: v for m, v in metrics.items() if v is not None}
    if status == "ok" and "val/pearson" not in metrics:
        status = "collapsed"  # constant predictions: Pearson undefined (today's status for such a run)
    return make_record(
        overrides=overrides_of(row["config"]),
        status=status,
        metrics=metrics,
        params=int(row["params"]) if row["params"] else None,
        seconds=_number(row["seconds_mean"]) or 0.0,
        peak_memory_mb=_number(row["peak_memory_mb_max"]),
        error=row["error"] or (COLLAPSED if status == "collapsed" else None),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=HERE / "leaderboard.csv", help="the study's leaderboard.csv")
    parser.add_argument("--out", type=Path, default=HERE, help="where leaderboard.md and the heatmap go")
    args = parser.parse_args(argv)
    with open(args.csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "synthetic_study"  # the study's name, the title of its tables and figures
        for row in rows:
            append_record(sweep / LEDGER_NAME, record_of(row))
        result = summarize(sweep)
        for path in (result["leaderboard_md"], *result["heatmaps"]):
            shutil.copyfile(path, args.out / path.name)
            print(f"wrote {args.out / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
