"""Third stage: DREAM-CNN / DREAM-RNN / DREAM-Attn on lentiMPRA and DeepSTARR, from scratch and from yeast.

For every model the script first trains a yeast checkpoint on the DREAM data (or takes one
with ``--yeast-ckpt MODEL=PATH``), then trains on each data set, for each seed, in three regimes:

* ``scratch``: fresh weights;
* ``finetune``: ``init_from=<yeast ckpt>`` in transfer mode (matching tensors copied, the first
  layer's overlapping input channels copied, a final block of another shape re-initialised),
  every block trained;
* ``frozen``: the same start with ``freeze=[first,core]`` (only the final block trains).

Each run is scored on the data set's test split with its best checkpoint (``test/pearson_<task>``).
Output: ``third_stage.{json,csv,md,png}`` in ``--out`` (mean ± sd over seeds per model x regime x
task; grouped bar plot), the table on stdout, the headline (transfer gain) on the last line.

Default budget (``--width tiny``: few-channel models; 2 epochs over each 1,000-read training
sample, batch 32; yeast: 2 x 100 steps on the DREAM sample) fits a loaded 2-core CPU and says
nothing about the published numbers; ``--width paper`` keeps the presets' published widths.
Full data sets: ``--data human_mpra=/path/to/folder --data drosophila_starr=/path/to/folder``
(see docs/third_stage.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("dream_cnn", "dream_rnn", "dream_attn")
DATASETS = ("human_mpra", "drosophila_starr")
REGIMES = ("scratch", "finetune", "frozen")
LABELS = {"dream_cnn": "DREAM-CNN", "dream_rnn": "DREAM-RNN", "dream_attn": "DREAM-Attn"}
TASKS = {"human_mpra": ["mean_value"], "drosophila_starr": ["Dev", "Hk"]}
# few-channel versions of the presets for CPU budgets (same blocks, same wiring)
TINY = {
    "dream_cnn": ["first.block.out_channels=16", "core.block.stage_widths=[16,16]"],
    "dream_rnn": ["first.block.out_channels=16", "core.block.hidden=16", "core.block.out_channels=16"],
    "dream_attn": ["first.block.out_channels=16", "core.block.n_layers=1", "core.block.n_heads=2"],
}
QUIET = [
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
]


def compose(overrides: list[str], run_dir: Path):
    """conf/train.yaml with ``overrides`` (no Hydra run: the run folder is set explicitly)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.run_dir = str(run_dir)
    return cfg


def run(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """Train one configuration in this process; returns its ``metrics.json`` summary."""
    import contextlib
    import io

    from src.train_task import train

    with contextlib.redirect_stdout(io.StringIO()):  # the graph table every run prints
        return train(compose(overrides, run_dir))


def budget(args: argparse.Namespace, model: str, yeast: bool = False) -> list[str]:
    epochs, steps = (args.yeast_epochs, args.yeast_steps_per_epoch) if yeast else (args.epochs, args.steps_per_epoch)
    out = [f"recipe.epochs={epochs}", f"recipe.batch_size={args.batch_size}", *args.set]
    if steps:
        out.append(f"recipe.steps_per_epoch={steps}")
    return out + (TINY[model] if args.width == "tiny" else [])


def yeast_checkpoint(args: argparse.Namespace, model: str, work: Path) -> str:
    """The given yeast checkpoint of ``model``, or one trained now on the DREAM data."""
    if model in args.yeast_ckpt:
        return args.yeast_ckpt[model]
    summary = run(
        [f"experiment={model}", "data=dream", f"data.path={args.dream}", "seed=0", *budget(args, model, True), *QUIET],
        work / "yeast" / model,
    )
    print(f"# yeast {model}: {summary['monitor']} {summary['best_score']:.4f} ({summary['seconds']:.0f} s)", flush=True)
    return str(summary["best_checkpoint"])


def regime_overrides(regime: str, ckpt: str) -> list[str]:
    if regime == "scratch":
        return []
    frozen = ["freeze=[first,core]"] if regime == "frozen" else []
    return [f"init_from={ckpt}", "init_from_strict=false", "init_from_partial=true", *frozen]


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per data set x model x regime x task: mean ± sd of the test Pearson over seeds."""
    rows = []
    for dataset in DATASETS:
        for model in MODELS:
            for regime in REGIMES:
                runs = [r for r in records if (r["dataset"], r["model"], r["regime"]) == (dataset, model, regime)]
                if not runs:
                    continue
                tasks = TASKS[dataset]
                for task in [*tasks, "mean"] if len(tasks) > 1 else tasks:
                    key = f"test/pearson_{task}" if len(tasks) > 1 and task != "mean" else "test/pearson"
                    values = [r["metrics"].get(key) for r in runs if r["status"] == "ok"]
                    mean, sd = mean_sd(values)
                    rows.append(
                        {
                            "dataset": dataset,
                            "model": model,
                            "regime": regime,
                            "task": task,
                            "test_pearson_mean": mean,
                            "test_pearson_sd": sd,
                            "n_seeds": sum(v is not None for v in values),
                            "failed": sum(r["status"] != "ok" for r in runs),
                        }
                    )
    return rows


def fmt(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def markdown(rows: list[dict[str, Any]], note: str) -> str:
    lines = [
        "# Third stage: test Pearson (mean ± sd over seeds)",
        "",
        note,
        "",
        "| data set | model | regime | task | test Pearson | seeds | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cell = fmt(r["test_pearson_mean"], r["test_pearson_sd"])
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['regime']} | {r['task']} | {cell} | {r['n_seeds']} | {r['failed']} |"
        )
    return "\n".join(lines) + "\n"


def bar_plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: one panel per data set x task, groups = models, bars = regimes, error bars = sd."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    panels = [(d, t) for d in DATASETS for t in TASKS[d] if any(r["dataset"] == d and r["task"] == t for r in rows)]
    fig = Figure(figsize=(4.2 * max(len(panels), 1), 3.6), layout="constrained")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    width = 0.8 / len(REGIMES)
    for ax, (dataset, task) in zip(axes, panels):
        for k, regime in enumerate(REGIMES):
            means, sds = [], []
            for model in MODELS:
                row = next(
                    (
                        r
                        for r in rows
                        if (r["dataset"], r["model"], r["regime"], r["task"]) == (dataset, model, regime, task)
                    ),
                    None,
                )
                means.append(row["test_pearson_mean"] if row and row["test_pearson_mean"] is not None else 0.0)
                sds.append(row["test_pearson_sd"] if row and row["test_pearson_sd"] is not None else 0.0)
            xs = [i + (k - (len(REGIMES) - 1) / 2) * width for i in range(len(MODELS))]
            ax.bar(xs, means, width, yerr=sds, capsize=2, label=regime)
        ax.set_xticks(range(len(MODELS)), [LABELS[m] for m in MODELS])
        ax.set_title(f"{dataset}: {task}")
        ax.set_ylabel("test Pearson")
        ax.axhline(0.0, color="black", linewidth=0.5)
    axes[0].legend(fontsize="small")
    fig.savefig(path, dpi=120)


def headline(rows: list[dict[str, Any]]) -> str:
    """Mean over models and tasks of fine-tuned (and frozen) minus scratch test Pearson, per data set."""
    parts = []
    for dataset in DATASETS:
        tasks = TASKS[dataset]
        sel = {(r["model"], r["regime"], r["task"]): r["test_pearson_mean"] for r in rows if r["dataset"] == dataset}
        for regime in ("finetune", "frozen"):
            gains = [
                sel[(m, regime, t)] - sel[(m, "scratch", t)]
                for m in MODELS
                for t in tasks
                if sel.get((m, regime, t)) is not None and sel.get((m, "scratch", t)) is not None
            ]
            if gains:
                parts.append(f"{dataset} {regime} - scratch {sum(gains) / len(gains):+.3f}")
    return "headline: test Pearson gain over scratch (mean over models and tasks): " + "; ".join(parts)


def parse_pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep:
            raise SystemExit(f"{flag} expects NAME=PATH, got {value!r}")
        out[key] = path
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--width", choices=["tiny", "paper"], default="tiny")
    parser.add_argument("--yeast-epochs", type=int, default=2)
    parser.add_argument("--yeast-steps-per-epoch", type=int, default=100, help="0 = full passes over the DREAM data")
    parser.add_argument("--dream", default=str(ROOT.parent / "shared" / "data" / "dream" / "train_sample.txt"))
    parser.add_argument(
        "--data", action="append", default=[], help="DATASET=PATH (folder or file); default: shared samples"
    )
    parser.add_argument("--yeast-ckpt", action="append", default=[], help="MODEL=PATH: skip yeast training for MODEL")
    parser.add_argument("--set", action="append", default=[], help="extra Hydra override for every run (trainer=gpu)")
    parser.add_argument("--work", default="/tmp/prixfixe_third_stage", help="run folders (checkpoints)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    args.yeast_ckpt = parse_pairs(args.yeast_ckpt, "--yeast-ckpt")
    data = {d: str(ROOT.parent / "shared" / "data" / d) for d in DATASETS} | parse_pairs(args.data, "--data")

    os.environ.setdefault("WANDB_MODE", "offline")
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "src"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(args.work)
    started = time.time()
    records: list[dict[str, Any]] = []
    for model in args.models:
        needs_yeast = any(r != "scratch" for r in args.regimes)
        ckpt = yeast_checkpoint(args, model, work) if needs_yeast else ""
        for dataset in args.datasets:
            for regime in args.regimes:
                for seed in args.seeds:
                    overrides = [
                        f"experiment={model}",
                        f"data={dataset}",
                        f"data.path={data[dataset]}",
                        f"seed={seed}",
                        *budget(args, model),
                        *regime_overrides(regime, ckpt),
                        *QUIET,
                    ]
                    record = {"model": model, "dataset": dataset, "regime": regime, "seed": seed}
                    try:
                        summary = run(overrides, work / dataset / model / regime / f"seed{seed}")
                        record.update(status="ok", metrics=summary["metrics"], seconds=summary["seconds"])
                        record["params"] = summary["params"]
                    except Exception as err:  # one failed run is reported, the rest carry on
                        record.update(status="failed", metrics={}, error=str(err).splitlines()[0][:300])
                    records.append(record)
                    shown = record["metrics"].get("test/pearson")
                    print(
                        f"# {dataset} {model} {regime} seed {seed}: "
                        + (f"test/pearson {shown:.4f}" if shown is not None else record.get("error", "")),
                        flush=True,
                    )
    rows = summarise(records)
    note = (
        f"{len(args.seeds)} seed(s); width {args.width}; {args.epochs} epoch(s), batch {args.batch_size}; yeast "
        f"{args.yeast_epochs} epoch(s) x {args.yeast_steps_per_epoch or 'all'} steps; "
        f"data: {', '.join(f'{d}={data[d]}' for d in args.datasets)}; DREAM (yeast) data: "
        f"{args.dream if any(m not in args.yeast_ckpt for m in args.models) else 'given checkpoints'}; "
        f"{time.time() - started:.0f} s in all."
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "third_stage.md").write_text(markdown(rows, note), encoding="utf-8")
    with open(out / "third_stage.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["dataset"])
        writer.writeheader()
        writer.writerows(rows)
    payload = {"note": note, "args": {k: v for k, v in vars(args).items()}, "rows": rows, "runs": records}
    (out / "third_stage.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    if rows:
        bar_plot(rows, out / "third_stage.png")
    print(markdown(rows, note))
    print(headline(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
