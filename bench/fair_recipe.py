"""Fair recipe: each combination at the shared peak (0.005), at ``recipe.lr=auto``, and at auto + ``recipe.retries=2``.

On the DREAM sample (``--data``, default ``../shared/data/dream/train_sample.txt``), for each combination and
seed, trains a reduced-width model (``bench/reduced_widths.py``; full widths do not fit a CPU's time) for a fixed
number of optimizer steps (``--steps``) with the autosome recipe (AdamW + One-Cycle), and reports per combination and
mode: collapsed/diverged runs, validation Pearson mean +- sd over seeds, the found peak and the range test's cost.

How the three modes are run (each a real ``train()`` in this process):

* ``shared``: ``recipe.lr=0.005``.
* ``auto`` and ``auto+retries``: one run with ``recipe.lr=auto recipe.retries=2``. Its first attempt *is* the
  ``auto`` run (a seeded run does not depend on whether retries are allowed; tests/test_fair_recipe.py shows that
  the range test leaves the seeded run unchanged), its final attempt is the ``auto+retries`` result.
* The range test runs once per combination (first seed); the other seeds reuse its peak, as a sweep's cache does.

The finder's cost is reported in steps and seconds, as a share of this bench's budget and of a paper-length run
(80 epochs x 1,000 steps). Writes ``fair_recipe.json`` (every run), ``fair_recipe.md`` (the table) and
``fair_recipe.png`` (Pearson per mode) into ``--out``; the last line is the headline.

The verdict per combination compares ``auto + retries`` with the shared peak: the difference of the mean
validation Pearson r is "within noise" when it is at most twice its standard error (from the spread over seeds).

``--grid 0.0003,0.001,...`` trains every combination and seed at each fixed peak instead (no range test): the
validation r against the peak, the reference a peak-picking rule is judged by. Writes ``fair_recipe_grid.json``
and ``fair_recipe_grid.md``.

    nice -n 10 python bench/fair_recipe.py                     # 7 combinations, 3 seeds, 300 steps, CPU
    python bench/fair_recipe.py --combos dream_cnn --seeds 0 --steps 30
    nice -n 10 python bench/fair_recipe.py --grid 0.0003,0.001,0.002,0.005,0.01,0.02 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:  # also when loaded from its file (the tests): bench/'s shared modules
    sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu_name  # noqa: E402
from reduced_widths import BLOCKS_OF, REDUCED, blocks, reduced  # noqa: E402, F401  (re-exported: fair_recipe.REDUCED)

PAPER_STEPS = 80 * 1000
SHARED_LR = 0.005
# combination -> overrides (blocks, and the processing a block needs)
COMBOS = {
    "bhi-bhi-bhi": ["first=bhi", "core=bhi", "final=bhi"],
    "bhi-bhi-unlockdna": ["first=bhi", "core=bhi", "final=unlockdna"],
    "resnet-bhi-resnet": ["first=resnet", "core=bhi", "final=resnet"],
    "sysu-sysu-sysu": ["first=sysu", "core=sysu", "final=sysu", "processing=sysu"],
    "autosome-autosome-autosome": ["first=autosome", "core=autosome", "final=autosome"],
    "dream_cnn": ["experiment=dream_cnn"],
    "dream_rnn": ["experiment=dream_rnn"],
}


def compose(overrides: list[str], run_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from src.entry import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.run_dir = str(run_dir)
    return cfg


def run_one(name: str, seed: int, lr: str, retries: int, args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    from src.errors import ConfigError, DivergedError
    from src.train_task import train

    overrides = [
        *COMBOS[name],
        *reduced(name),
        "data=dream",
        f"data.path={args.data}",
        "recipe=autosome",
        f"recipe.lr={lr}",
        f"recipe.retries={retries}",
        f"recipe.lr_find.num_steps={args.finder_steps}",
        f"recipe.lr_find.rule={args.rule}",
        *([f"recipe.lr_find.divisor={args.divisor}"] if getattr(args, "divisor", None) else []),
        f"recipe.batch_size={args.batch_size}",
        "recipe.epochs=1",
        f"recipe.steps_per_epoch={args.steps}",
        f"seed={seed}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.num_sanity_val_steps=0",
        f"datamodule.val_max_items={args.val_items}",
    ]
    started = time.time()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        summary = train(compose(overrides, run_dir))
    except DivergedError:
        summary = json.loads((run_dir / "metrics.json").read_text())
    except ConfigError as err:
        return {"status": "bad input", "error": str(err), "seconds": time.time() - started}
    summary["wall"] = time.time() - started
    return summary


def pearson_of(entry: dict[str, Any]) -> float | None:
    value = (entry.get("metrics") or {}).get("val/pearson")
    ok = entry.get("status") == "ok" and isinstance(value, (int, float)) and math.isfinite(value)
    return float(value) if ok else None


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, sd


def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    rows, stats = [], {}
    header = (
        "| combination | mode | collapsed/diverged | val Pearson mean ± sd | peak | retried | finder steps | finder s |"
    )
    rows += [header, "|" + "---|" * 8]
    for name in dict.fromkeys(r["combination"] for r in runs):
        for mode in ("shared", "auto", "auto+retries"):
            mine = [r for r in runs if r["combination"] == name and r["mode"] == mode]
            values = [v for v in (pearson_of(r) for r in mine) if v is not None]
            bad = sum(r.get("status") in ("collapsed", "diverged") for r in mine)
            mean, sd = mean_sd(values)
            peaks = sorted({round(r["peak"], 6) for r in mine if r.get("peak")})
            retried = sum((r.get("attempt") or 1) > 1 for r in mine)
            search = next((r["search"] for r in mine if r.get("search")), None)
            stats[f"{name}/{mode}"] = {"bad": bad, "n": len(mine), "mean": mean, "sd": sd, "values": values}
            text = "-" if mean is None else f"{mean:.3f}" + ("" if sd is None else f" ± {sd:.3f}")
            rows.append(
                f"| {name} | {mode} | {bad}/{len(mine)} | {text} (n={len(values)}) | "
                f"{', '.join(f'{p:.3g}' for p in peaks) or '-'} | {retried if mode == 'auto+retries' else '-'} | "
                f"{search['steps'] if search and mode != 'shared' else '-'} | "
                f"{search['seconds'] if search and mode != 'shared' else '-'} |"
            )
    return rows, stats


def plot(stats: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(k.split("/")[0] for k in stats))
    modes = ("shared", "auto", "auto+retries")
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.subplots()
    for i, mode in enumerate(modes):
        for j, name in enumerate(names):
            s = stats[f"{name}/{mode}"]
            x = j + (i - 1) * 0.25
            ax.scatter([x] * len(s["values"]), s["values"], color=f"C{i}", s=14, label=mode if j == 0 else None)
            if s["bad"]:
                ax.annotate(f"{s['bad']}c", (x, 0.0), ha="center", fontsize=7, color=f"C{i}")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("validation Pearson r (ok runs)")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("shared peak 0.005 vs recipe.lr=auto vs auto + retries=2 (Nc: N collapsed/diverged)", fontsize=9)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dream" / "train_sample.txt"))
    parser.add_argument("--combos", default=",".join(COMBOS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of every run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--finder-steps", type=int, default=170, help="range-test steps (170 x batch 32 is one pass over the sample)"
    )
    parser.add_argument("--divisor", type=float, default=None, help="recipe.lr_find.divisor (default: the recipe's)")
    parser.add_argument("--grid", default=None, help="comma-separated fixed peaks: the validation r per peak instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rule", default="minimum", help="recipe.lr_find.rule: minimum (/ divisor) or steepest")
    parser.add_argument("--val-items", type=int, default=640, help="validation reads (a seeded subset)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=Path("/tmp/prixfixe-fair-recipe"))
    parser.add_argument(
        "--merge", nargs="+", type=Path, help="combine the fair_recipe.json files of benches run side by side"
    )
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args)
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("WANDB_MODE", "offline")
    if not Path(args.data).is_file():
        parser.exit(2, f"--data: {args.data} does not exist\n")
    if args.grid:
        return grid(args)
    runs: list[dict[str, Any]] = []
    started = time.time()
    for name in args.combos.split(","):
        found: float | None = None
        search: dict[str, Any] | None = None
        for seed in [int(s) for s in args.seeds.split(",")]:
            shared = run_one(name, seed, str(SHARED_LR), 0, args, args.work / name / f"shared-{seed}")
            runs.append({"combination": name, "mode": "shared", "seed": seed, "peak": SHARED_LR, **_brief(shared)})
            lr = "auto" if found is None else repr(found)
            fair = run_one(name, seed, lr, 2, args, args.work / name / f"auto-{seed}")
            lr_block = fair.get("lr") or {}
            if found is None:
                search = lr_block.get("search")
                found = (fair.get("attempts") or [{}])[0].get("lr") or lr_block.get("peak")
            first = (fair.get("attempts") or [fair])[0]
            runs.append(
                {"combination": name, "mode": "auto", "seed": seed, "peak": found, "search": search, **_brief(first)}
            )
            runs.append(
                {
                    "combination": name,
                    "mode": "auto+retries",
                    "seed": seed,
                    "peak": lr_block.get("peak"),
                    "search": search,
                    "attempt": fair.get("attempt"),
                    **_brief(fair),
                }
            )
            print(
                f"{name} seed {seed}: shared {_short(shared)} | auto {_short(first)} | retries {_short(fair)} "
                f"({time.time() - started:.0f} s)",
                flush=True,
            )
        report(runs, args, started)  # after every combination: a bench cut short still reports what ran
    return report(runs, args, started, final=True)


def grid(args: argparse.Namespace) -> int:
    """Every combination and seed at each fixed peak of ``--grid``: the validation r per peak (no range test)."""
    peaks = [float(p) for p in args.grid.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: list[dict[str, Any]] = []
    started = time.time()
    for name in args.combos.split(","):
        for peak in peaks:
            for seed in seeds:
                summary = run_one(name, seed, repr(peak), 0, args, args.work / "grid" / name / f"{peak!r}-{seed}")
                runs.append({"combination": name, "peak": peak, "seed": seed, **_brief(summary)})
                print(
                    f"{name} peak {peak:g} seed {seed}: {_short(summary)} ({time.time() - started:.0f} s)", flush=True
                )
    lines = grid_table(runs, peaks, args)
    info = {
        "cpu_model": cpu_name(),
        "threads": args.threads,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seeds": seeds,
        "peaks": peaks,
        "seconds": round(time.time() - started, 1),
        "reduced_widths": {name: reduced(name) for name in args.combos.split(",")},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fair_recipe_grid.json").write_text(json.dumps({"info": info, "runs": runs}, indent=1))
    (args.out / "fair_recipe_grid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def grid_table(runs: list[dict[str, Any]], peaks: list[float], args: argparse.Namespace) -> list[str]:
    """Mean validation r (``c``: collapsed or diverged runs) per combination and peak; the best peak marked."""
    lines = [
        f"CPU: {cpu_name()}, {args.threads} threads; {args.steps} steps of batch {args.batch_size} per run; "
        "validation Pearson r, mean over seeds (c: runs that collapsed or diverged, counted as r = 0 in the mean)",
        "",
        "| combination | " + " | ".join(f"{p:g}" for p in peaks) + " | best |",
        "|---|" + "---|" * (len(peaks) + 1),
    ]
    for name in dict.fromkeys(r["combination"] for r in runs):
        cells, means = [], []
        for peak in peaks:
            mine = [r for r in runs if r["combination"] == name and r["peak"] == peak]
            if not mine:
                means.append(-math.inf)
                cells.append("-")
                continue
            values = [pearson_of(r) or 0.0 for r in mine]
            bad = sum(r.get("status") in ("collapsed", "diverged") for r in mine)
            means.append(sum(values) / len(values))
            cells.append(f"{means[-1]:.3f}" + (f" ({bad}c)" if bad else ""))
        best = max(range(len(peaks)), key=lambda i: means[i])
        cells[best] = f"**{cells[best]}**"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {peaks[best]:g} |")
    return lines


def verdicts(stats: dict[str, Any]) -> list[str]:
    """auto + retries against the shared peak per combination: within twice the standard error of the difference?"""
    out = []
    for name in dict.fromkeys(k.split("/")[0] for k in stats):
        a, b = stats.get(f"{name}/auto+retries"), stats.get(f"{name}/shared")
        if not a or not b or len(a["values"]) < 2 or len(b["values"]) < 2:
            out.append(f"- {name}: not judged (fewer than 2 ok runs in a mode)")
            continue
        diff = a["mean"] - b["mean"]
        se = math.sqrt(a["sd"] ** 2 / len(a["values"]) + b["sd"] ** 2 / len(b["values"]))
        word = "within noise" if abs(diff) <= 2 * se else ("better" if diff > 0 else "worse")
        out.append(f"- {name}: auto + retries - shared = {diff:+.3f} (2 SE {2 * se:.3f}): {word}")
    return out


def merge(args: argparse.Namespace) -> int:
    """One report from several benches' JSON (each combination, mode and seed once; the first file wins)."""
    runs, seen, seconds = [], set(), 0.0
    for path in args.merge:
        data = json.loads(path.read_text())
        seconds += float(data["info"].get("seconds") or 0.0)
        for run in data["runs"]:
            key = (run["combination"], run["mode"], run["seed"])
            if key not in seen:
                seen.add(key)
                runs.append(run)
    first = json.loads(args.merge[0].read_text())["info"]
    args.steps, args.batch_size, args.finder_steps = first["steps"], first["batch_size"], first["finder_steps"]
    args.threads = first["threads"]
    return report(runs, args, time.time() - seconds, final=True)


def report(runs: list[dict[str, Any]], args: argparse.Namespace, started: float, final: bool = False) -> int:
    """Write the JSON, the Markdown table and the plot; print them (with the headline last) when ``final``."""
    rows, stats = table(runs, args)
    args.out.mkdir(parents=True, exist_ok=True)
    searches = [r["search"] for r in runs if r["mode"] == "auto" and r.get("search")]
    finder_steps = sorted({s["steps"] for s in searches})
    budget = args.steps
    combos = list(dict.fromkeys(r["combination"] for r in runs))
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_name(),
        "threads": args.threads,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "finder_steps": args.finder_steps,
        "rule": getattr(args, "rule", "minimum"),
        "reduced_widths": {name: reduced(name) for name in combos},
        "complete": final,
        "seconds": round(time.time() - started, 1),
    }
    (args.out / "fair_recipe.json").write_text(json.dumps({"info": info, "runs": runs, "stats": stats}, indent=1))
    bad_auto = sum(s["bad"] for k, s in stats.items() if k.endswith("/auto+retries"))
    bad_shared = sum(s["bad"] for k, s in stats.items() if k.endswith("/shared"))
    share_paper = max(finder_steps or [0]) / PAPER_STEPS
    n_seeds = len({r["seed"] for r in runs}) or 1
    share_bench = max(finder_steps or [0]) / budget
    share_combination = max(finder_steps or [0]) / (budget * n_seeds)
    lines = [
        f"CPU: {info['cpu_model']}, {args.threads} threads; {args.steps} steps of batch {args.batch_size} per run; "
        f"range test {args.finder_steps} steps, rule {getattr(args, 'rule', 'minimum')}",
        "",
        *rows,
        "",
        f"finder cost: {max(finder_steps or [0])} steps = {share_paper:.2%} of a paper-length run (80 x 1,000 steps), "
        f"{share_bench:.0%} of one run of this bench ({budget} steps); it runs once per combination, so "
        f"{share_combination:.0%} of the combination's {n_seeds} x {budget} training steps",
        "",
        *verdicts(stats),
    ]
    (args.out / "fair_recipe.md").write_text("\n".join(lines) + "\n")
    plot(stats, args.out / "fair_recipe.png")
    if not final:
        return 0
    print("\n".join(lines))
    print(
        f"collapsed/diverged runs: shared 0.005 {bad_shared}, auto + retries=2 {bad_auto} "
        f"(of {sum(s['n'] for k, s in stats.items() if k.endswith('/shared'))} each); finder {share_paper:.2%} of a "
        "paper-length run"
    )
    return 0


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": summary.get("status"),
        "metrics": {k: v for k, v in (summary.get("metrics") or {}).items() if k in ("val/pearson", "val/loss")},
        "seconds": summary.get("seconds"),
        "error": summary.get("error"),
        **({"attempt": summary["attempt"]} if "attempt" in summary and isinstance(summary["attempt"], int) else {}),
    }


def _short(summary: dict[str, Any]) -> str:
    value = pearson_of(summary)
    return f"{summary.get('status')} r={value:.3f}" if value is not None else str(summary.get("status"))


if __name__ == "__main__":
    sys.exit(main())
