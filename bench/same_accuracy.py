"""Same accuracy: DREAM-CNN trained in fp32 and with ``trainer=cpu_fast``, same seed, same data.

    python bench/same_accuracy.py                                  # the issue's run: 6 epochs, batch 256
    python bench/same_accuracy.py --extra recipe.steps_per_epoch=8 # a shorter check

Both runs go through ``train.py`` (``experiment=dream_cnn data=dream``) in folders under ``--out``;
``--parallel`` runs them side by side with ``--threads`` threads each. Prints a table, writes
``bench/results/same_accuracy-<host>.json`` and ends with ``val/pearson fp32=<a> fast=<b> diff=<b-a>``.
The target: the fast run's final validation Pearson within 0.01 of the fp32 run's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dream" / "train_sample.txt"
RUNS = {"fp32": ["trainer=cpu", "trainer.precision=32-true"], "fast": ["trainer=cpu_fast"]}


def command(name: str, args: argparse.Namespace) -> list[str]:
    """The ``train.py`` command line of one run."""
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "experiment=dream_cnn",
        "data=dream",
        f"data.path={args.data}",
        f"recipe.epochs={args.epochs}",
        f"recipe.batch_size={args.batch}",
        f"seed={args.seed}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={Path(args.out) / name}",
        *RUNS[name],
        *args.extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/prixfixe_same_accuracy")
    parser.add_argument("--threads", type=int, default=None, help="OMP/torch threads per run")
    parser.add_argument("--parallel", action="store_true", help="run fp32 and fast at the same time")
    parser.add_argument("--extra", nargs="*", default=[], help="more train.py overrides for both runs")
    args = parser.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"error: --data {args.data} does not exist")
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    started = time.time()
    procs: dict[str, subprocess.Popen] = {}
    seconds: dict[str, float] = {}
    for name in RUNS:
        t0 = time.time()
        with open(Path(args.out) / f"{name}.log", "w") as log:  # the child keeps its own handle
            procs[name] = subprocess.Popen(command(name, args), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if not args.parallel:
            procs[name].wait()
            seconds[name] = time.time() - t0
    for name, proc in procs.items():
        proc.wait()
        seconds.setdefault(name, time.time() - started)
    rows = {}
    for name, proc in procs.items():
        metrics_file = Path(args.out) / name / "metrics.json"
        if proc.returncode != 0 or not metrics_file.exists():
            sys.exit(f"error: the {name} run failed (exit {proc.returncode}); see {Path(args.out) / f'{name}.log'}")
        metrics = json.loads(metrics_file.read_text())
        rows[name] = {
            "command": " ".join(command(name, args)[1:]),
            "status": metrics["status"],
            "val_pearson": metrics["metrics"].get("val/pearson"),
            "best_val_pearson": metrics.get("best_score"),  # the monitor (val/pearson by default)
            "global_step": metrics["global_step"],
            "seconds": round(seconds[name], 1),
        }
    print(f"{'run':6s} {'val/pearson':>12s} {'best':>8s} {'steps':>6s} {'seconds':>8s}")
    for name, row in rows.items():
        pearson, best = row["val_pearson"], row["best_val_pearson"]
        best = float("nan") if best is None else best
        print(f"{name:6s} {pearson:12.4f} {best:8.4f} {row['global_step']:6d} {row['seconds']:8.1f}")
    diff = rows["fast"]["val_pearson"] - rows["fp32"]["val_pearson"]
    result = {
        "host": platform.node(),
        "load_avg": os.getloadavg(),
        "epochs": args.epochs,
        "batch": args.batch,
        "seed": args.seed,
        "extra": args.extra,
        "runs": rows,
        "val_pearson_diff": diff,
        "within_0.01": abs(diff) <= 0.01,
    }
    out = ROOT / "bench" / "results" / f"same_accuracy-{platform.node()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"val/pearson fp32={rows['fp32']['val_pearson']:.4f} fast={rows['fast']['val_pearson']:.4f} diff={diff:+.4f}")


if __name__ == "__main__":
    main()
