"""Is the ranking kept? The full grid at the top budget against successive halving to the same budget.

    nice -n 10 python bench/halving.py --parallel   # 8 combinations x 2 seeds, 9 epochs of 6 steps, eta 3, 3 rungs
    python bench/halving.py --epochs 18 --steps-per-epoch 10   # longer rungs

Both sweeps go through ``train.py -m`` on the DREAM sample (``data=dream``), with the blocks' widths
reduced as in the tests (``tests/helpers.py`` ``SHRINK``, written into a copy of ``conf/``), one
thread per run, one job after the other (``--parallel``: the two sweeps side by side; the compute
compared is optimizer steps and each job's own seconds, not the sweeps' wall time). The full grid
trains every job for ``--epochs``; the halving sweep (``sweep.halving.eta/rungs``) trains rung 0 for
``epochs / eta^(rungs-1)`` and continues the top ``1/eta`` by validation Pearson (mean over seeds) to
the same top budget.

Prints a table (one row per configuration: rung-0 score, full-grid score, ranks, top rung reached),
writes ``bench/results/halving-<host>-e<epochs>x<steps per epoch>.json`` and ends with the headline:
compute ratio (optimizer steps and job seconds), the Spearman correlation between the rung-0 and the
full-grid ranking, and whether the full grid's best configuration reaches the top rung. Below a
correlation of 0.5 the report says that rung 0 is too short to rank.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_name  # noqa: E402  (bench/machine.py: a bench script runs with bench/ on sys.path)

from src.sweep.halving import TERMINAL, record_rung, record_score  # noqa: E402
from src.sweep.halving_report import compute_spent  # noqa: E402
from src.sweep.halving_sweep import record_config  # noqa: E402
from src.sweep.ledger import read_ledger  # noqa: E402
from tests.helpers import SHRINK  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "dream" / "train_sample.txt"
METRIC = "val/pearson"
TOO_SHORT = 0.5  # rank correlation below which rung 0 does not rank the configurations


def shrunk_conf(out: Path) -> Path:
    """A copy of ``conf/`` with every block option's widths reduced (:data:`SHRINK`)."""
    conf = out / "conf"
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(ROOT / "conf", conf)
    for (group, option), overrides in SHRINK.items():
        path = conf / group / f"{option}.yaml"
        cfg = OmegaConf.load(path)
        for item in overrides:
            key, value = item.split("=", 1)
            OmegaConf.update(cfg, key.split(".", 1)[1], yaml.safe_load(value))
        OmegaConf.save(cfg, path)
    return conf


def start_sweep(conf: Path, sweep_dir: Path, args: argparse.Namespace, extra: list[str]) -> subprocess.Popen:
    """Start one ``train.py -m`` sweep (its output in ``<sweep dir>.log``)."""
    shutil.rmtree(sweep_dir, ignore_errors=True)
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "-cp",
        str(conf),
        f"hydra.sweep.dir={sweep_dir}",
        "data=dream",
        f"data.path={args.data}",
        "processing=onehot",
        f"recipe.epochs={args.epochs}",
        f"recipe.batch_size={args.batch}",
        f"recipe.steps_per_epoch={args.steps_per_epoch}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.num_sanity_val_steps=0",
        "hydra.callbacks.summarize.enabled=false",
        f"first={args.firsts}",
        f"core={args.cores}",
        f"final={args.finals}",
        f"seed={args.seeds}",
        *args.extra,
        *extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), WANDB_MODE="offline")
    with open(sweep_dir.parent / f"{sweep_dir.name}.log", "w") as log:  # the child keeps its own handle
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_sweeps(conf: Path, sweeps: dict[str, tuple[Path, list[str]]], args: argparse.Namespace) -> dict[str, float]:
    """Run the sweeps one after the other (``--parallel``: side by side); their wall seconds."""
    seconds: dict[str, float] = {}
    procs: dict[str, tuple[subprocess.Popen, float]] = {}
    for name, (sweep_dir, extra) in sweeps.items():
        procs[name] = (start_sweep(conf, sweep_dir, args, extra), time.time())
        if not args.parallel:
            procs[name][0].wait()
            seconds[name] = time.time() - procs[name][1]
    while any(proc.poll() is None for proc, _ in procs.values()):
        for name, (proc, started) in procs.items():
            if proc.poll() is not None and name not in seconds:
                seconds[name] = time.time() - started
        time.sleep(1.0)
    for name, (proc, started) in procs.items():
        seconds.setdefault(name, time.time() - started)
        if proc.returncode != 0:
            sys.exit(f"error: the {name} sweep failed (exit {proc.returncode}); see {sweeps[name][0]}.log")
    return seconds


def mean_scores(records: list[dict]) -> dict[str, float]:
    """Mean score over seeds per configuration."""
    values: dict[str, list[float]] = {}
    for record in records:
        score = record_score(record, METRIC) if record.get("status") == "ok" else None
        if score is not None:
            values.setdefault(record_config(record), []).append(score)
    return {config: sum(v) / len(v) for config, v in values.items()}


def ranks(scores: dict[str, float]) -> dict[str, int]:
    ordered = sorted(scores, key=lambda c: (-scores[c], c))
    return {config: i + 1 for i, config in enumerate(ordered)}


def label(config: str) -> str:
    parts = dict(p.split("=", 1) for p in config.split(",") if "=" in p)
    return f"{parts.get('first')}-{parts.get('core')}-{parts.get('final')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--epochs", type=int, default=9, help="the top budget (recipe.epochs)")
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--rungs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps-per-epoch", type=int, default=6, help="recipe.steps_per_epoch (CPU-sized epochs)")
    parser.add_argument("--firsts", default="autosome,bhi")
    parser.add_argument("--cores", default="autosome,resnet")
    parser.add_argument("--finals", default="autosome,bhi")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per run")
    parser.add_argument("--parallel", action="store_true", help="run the two sweeps side by side")
    parser.add_argument("--out", default="/tmp/prixfixe_halving_bench")
    parser.add_argument("--extra", nargs="*", default=[], help="more train.py overrides for both sweeps")
    args = parser.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"error: --data {args.data} does not exist")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    conf = shrunk_conf(out)

    full_dir, halving_dir = out / "full", out / "halving"
    halving_args = [f"sweep.halving.eta={args.eta}", f"sweep.halving.rungs={args.rungs}"]
    walls = run_sweeps(conf, {"full": (full_dir, []), "halving": (halving_dir, halving_args)}, args)
    full_wall, halving_wall = walls["full"], walls["halving"]

    full = read_ledger(full_dir / "ledger.jsonl")
    halving = read_ledger(halving_dir / "ledger.jsonl")
    plan = json.loads((halving_dir / "halving" / "plan.json").read_text())
    full_scores = mean_scores(full)
    rung0 = json.loads((halving_dir / "halving" / "rung-0.json").read_text())["scores"]
    rung0 = {c: s for c, s in rung0.items() if s is not None}
    top = args.rungs - 1
    top_records = [r for r in halving if record_rung(r) == top and r.get("status") in TERMINAL]
    survivors = {record_config(r) for r in top_records}
    reached: dict[str, int] = {}
    for record in halving:
        rung = record_rung(record)
        if rung is not None:
            reached[record_config(record)] = max(rung, reached.get(record_config(record), 0))

    common = sorted(set(full_scores) & set(rung0))
    rho = float(spearmanr([rung0[c] for c in common], [full_scores[c] for c in common]).statistic)
    best = max(full_scores, key=lambda c: (full_scores[c], c))
    survives = best in survivors
    # a survivor's top rung continued one run: its metrics equal the full grid's run of the same job
    full_by_key = {r["key"]: r for r in full if r.get("status") == "ok"}
    same_run = [
        abs(record_score(r, METRIC) - record_score(full_by_key[r["key"]], METRIC))
        for r in top_records
        if r["key"] in full_by_key and record_score(r, METRIC) is not None
    ]
    spent = compute_spent(halving)
    full_seconds = sum(float(r.get("seconds") or 0.0) for r in full)
    steps_ratio = spent["steps"] / spent["full_steps"]
    wall_ratio = spent["seconds"] / full_seconds if full_seconds else float("nan")

    r0, rf = ranks(rung0), ranks(full_scores)
    print(f"CPU: {cpu_name()}; {len(common)} configurations x {len(args.seeds.split(','))} seeds")
    print(f"budgets (epochs) {plan['budgets_epochs']}, eta {args.eta}; scores: mean {METRIC} (best epoch) over seeds")
    print(f"{'configuration':32s} {'rung-0':>8s} {'rank':>5s} {'full':>8s} {'rank':>5s} {'top rung':>9s}")
    for config in sorted(common, key=lambda c: rf[c]):
        print(
            f"{label(config):32s} {rung0[config]:8.4f} {r0[config]:5d} {full_scores[config]:8.4f} "
            f"{rf[config]:5d} {reached.get(config, 0):9d}"
        )
    print(
        f"steps: halving {spent['steps']:.0f} / full grid {spent['full_steps']:.0f}; job seconds: halving "
        f"{spent['seconds']:.0f} / full grid {full_seconds:.0f}; sweep wall {halving_wall:.0f} s / {full_wall:.0f} s"
    )
    if same_run:
        print(f"survivors' top-rung {METRIC} vs the full grid's same jobs: max |diff| {max(same_run):.2e}")
    verdict = (
        "rung 0 is too short to rank: rank correlation below 0.5"
        if rho < TOO_SHORT
        else "rung 0 ranks the configurations (rank correlation at least 0.5)"
    )
    print(verdict)
    result = {
        "host": platform.node(),
        "cpu": cpu_name(),
        "load_avg": os.getloadavg(),
        "data": args.data,
        "epochs": args.epochs,
        "eta": args.eta,
        "rungs": args.rungs,
        "budgets_epochs": plan["budgets_epochs"],
        "batch": args.batch,
        "steps_per_epoch": args.steps_per_epoch,
        "blocks": {"first": args.firsts, "core": args.cores, "final": args.finals},
        "seeds": args.seeds,
        "widths": "tests/helpers.py SHRINK",
        "extra": args.extra,
        "rung0_scores": rung0,
        "full_scores": full_scores,
        "top_rung": sorted(survivors),
        "spearman_rung0_vs_full": rho,
        "full_best": best,
        "best_survives": survives,
        "steps": {"halving": spent["steps"], "full": spent["full_steps"], "ratio": steps_ratio},
        "job_seconds": {"halving": spent["seconds"], "full": full_seconds, "ratio": wall_ratio},
        "sweep_wall_seconds": {"halving": halving_wall, "full": full_wall, "side_by_side": args.parallel},
        "same_run_max_abs_diff": max(same_run) if same_run else None,
        "rung0_too_short": rho < TOO_SHORT,
    }
    path = ROOT / "bench" / "results" / f"halving-{platform.node()}-e{args.epochs}x{args.steps_per_epoch}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"halving compute {100 * steps_ratio:.1f}% of the full grid (steps; {100 * wall_ratio:.1f}% of job seconds), "
        f"Spearman rung 0 vs full {rho:.2f}, full-grid best {'survives' if survives else 'is pruned'}"
    )


if __name__ == "__main__":
    main()
