"""Does every combination learn the same in bf16-mixed as in 32-true? A fixed small budget per run.

Trains every first x core x final combination of the current menu (the families are the
``conf/first/*.yaml``, ``conf/core/*.yaml`` and ``conf/final/*.yaml`` files, so new families
join without code changes) on the embedded synthetic data, in each precision, for each seed,
and compares the mean validation Pearson r over seeds. Runs happen in this process (no
interpreter or Hydra start per run, no checkpoints, no logger); ``--workers N`` runs N of
them at once in worker processes (several small models share one GPU well).

Writes into ``--out`` (default ``bench/results``), named by ``--tag``:
``precision_<tag>.json`` (every run), ``precision_<tag>.md`` / ``.csv`` (one row per
combination: mean Pearson per precision, bf16 - fp32, statuses) and
``precision_<tag>_diff.png`` (heatmap of the difference; collapsed, failed, rejected and
not-run cells marked). The table goes to stdout; the last line is the headline.

Besides the fixed tolerance (``--tolerance``, 0.03), each combination is judged against its
own seed noise: the difference of the two means is "within noise" when it is at most twice
its standard error (from the spread over seeds in each precision), so a combination whose
models are still far from converged is not blamed on bf16 for differences that a change of
seed makes as well.

    python bench/precision_check.py                                  # whole menu, 3 seeds, CPU
    python bench/precision_check.py --accelerator gpu --workers 4 --budget-s 400
    python bench/precision_check.py --families bhi,resnet --seeds 0 --steps 40
    python bench/precision_check.py --combos resnet-resnet-resnet,bhi-bhi-unlockdna   # chosen combinations
    python bench/precision_check.py --smoke                          # seconds: the test's run
    python bench/precision_check.py --fair --combos bhi-bhi-bhi,sysu-sysu-sysu --accelerator gpu --budget-s 500
    nice -n 10 python bench/precision_check.py --fair --reduced --combos bhi-bhi-bhi,dream_cnn,dream_rnn --threads 2

``--fair`` judges the precisions under the fair recipe (docs/fair_recipe.md): one range test per combination
(fp32, first seed; ``recipe.lr_find`` settings via ``--override``) sets ``recipe.lr`` for every seed and both
precisions, and a collapsed or diverged run starts again from its seeded weights at a third of the peak
(``--retries``, 2). Every run's regression head starts at the training mean, as in ``train()``.

``--reduced`` trains every combination (and runs its range test) at the reduced widths of ``bench/fair_recipe.py``
(``bench/reduced_widths.py``: the same blocks at widths a CPU trains in minutes; a family without a reduction keeps its
widths; an ``--override`` of the same key wins). The report lists each combination's reduction overrides and the CPU.
``--combos`` takes ``dream_cnn`` and ``dream_rnn`` as names of their block triples (bhi-autosome-autosome,
bhi-bhi-autosome; their blocks only: the experiments' widths, processing and recipe are not applied).

``--budget-s`` stops starting runs when the next one would not finish in time (seeds run
in order, so a cut leaves whole seeds for most combinations); the rest is reported as not run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:  # also when loaded from its file (the tests): bench/'s shared modules
    sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu_name  # noqa: E402
from reduced_widths import BLOCKS_OF, blocks, reduced  # noqa: E402

PRECISIONS = ("32-true", "bf16-mixed")
GROUPS = ("first", "core", "final")
# --smoke: one tiny combination, one seed, a few steps (what tests/test_precision_check.py runs)
SMOKE_OVERRIDES = [
    "processing=onehot",
    "first.block.out_channels=8",
    "core.block.hidden=8",
    "core.block.out_channels=8",
]


def menu(groups_dir: Path = ROOT / "conf") -> dict[str, list[str]]:
    """The families of each block group, from the config files."""
    return {g: sorted(p.stem for p in (groups_dir / g).glob("*.yaml")) for g in GROUPS}


def compose(overrides: Sequence[str]):
    """``conf/train.yaml`` with ``overrides``, outside of a Hydra run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.run_dir = "unused"  # nothing is written: no checkpoints, no logger
    return cfg


def _overrides(job: dict[str, Any]) -> list[str]:
    """The Hydra overrides of one run (with --reduced: the combination's reduced widths; with --fair: its found peak as
    ``recipe.lr``)."""
    return [
        f"first={job['first']}",
        f"core={job['core']}",
        f"final={job['final']}",
        f"seed={job['seed']}",
        f"data.source.n={job['n']}",
        f"recipe.batch_size={job['batch_size']}",
        "recipe.epochs=1",
        f"recipe.steps_per_epoch={job['steps']}",
        f"trainer.precision={job['precision']}",
        f"trainer.accelerator={job['accelerator']}",
        f"trainer.devices={job['devices']}",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "logger=none",
        *job.get("widths", []),
        *job["overrides"],
        *([f"recipe.lr={job['peak']!r}"] if job.get("peak") else []),
    ]


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one combination in one precision for ``job['steps']`` steps; never raises."""
    import torch
    from omegaconf import open_dict

    from src.errors import CompositionError, DivergedError, error_line

    torch.set_num_threads(int(job["threads"]))
    for name in ("lightning.pytorch", "lightning.fabric"):  # one line per run is enough
        logging.getLogger(name).setLevel(logging.ERROR)
    overrides = _overrides(job)
    record = {k: job[k] for k in ("first", "core", "final", "seed", "precision")}
    started = time.time()
    try:
        cfg = compose(overrides)
        torch.set_float32_matmul_precision(cfg.get("matmul_precision", "high"))
        attempts: list[dict[str, Any]] = []
        for attempt in range(int(job.get("retries", 0)) + 1):  # --fair: collapsed/diverged runs start again
            if attempt:
                with open_dict(cfg):
                    cfg.recipe.lr = float(cfg.recipe.lr) / 3.0  # from the seeded initial weights, a third of the peak
            try:
                status, metrics, steps = _fit(cfg, job)
                error = None
            except DivergedError as err:
                status, metrics, steps, error = "diverged", {}, 0, error_line(err)
            attempts.append({"lr": float(cfg.recipe.lr), "status": status})
            if status == "ok":
                break
        record.update(status=status, metrics=metrics, steps=steps, attempts=attempts)
        if error is not None:
            record["error"] = error
    except CompositionError as err:
        record.update(status="rejected", error=error_line(err))
    except Exception as err:  # recorded, the check goes on
        record.update(status="failed", error=error_line(err), traceback=traceback.format_exc(limit=4))
    record["seconds"] = round(time.time() - started, 3)
    return record


def _prepared(cfg: Any) -> tuple[Any, Any]:
    """The seeded module (its regression head started at the data, as ``train()`` does) and the read data."""
    import lightning as L

    from src.head_bias import start_head_at_targets
    from src.train_task import build_datamodule, build_module

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    module = build_module(cfg)
    datamodule = build_datamodule(cfg, module)
    datamodule.setup("fit")
    module.objective.fit(datamodule.train_targets)
    start_head_at_targets(module, datamodule.train_targets)
    return module, datamodule


def _fit(cfg: Any, job: dict[str, Any]) -> tuple[str, dict[str, float], int]:
    """One training run of ``cfg``: ``(status, validation metrics, steps)``; DivergedError propagates."""
    import lightning as L

    from src.train_task import EpochStream

    module, datamodule = _prepared(cfg)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        precision=cfg.trainer.precision,
        max_epochs=1,
        gradient_clip_val=cfg.recipe.get("grad_clip"),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[EpochStream()],
        default_root_dir=job["scratch"],
    )
    trainer.fit(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}
    return ("collapsed" if module.collapsed else "ok"), metrics, int(trainer.global_step)


def fair_peak(job: dict[str, Any]) -> dict[str, Any]:
    """--fair: the range test of one combination (fp32, the first seed); its summary (``peak`` among it)."""
    import torch

    from src.lr_range import find_peak

    torch.set_num_threads(int(job["threads"]))
    cfg = compose(_overrides({**job, "precision": "32-true"}))
    module, datamodule = _prepared(cfg)
    return find_peak(cfg, module, datamodule).summary()


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _sd(values: Sequence[float]) -> float | None:
    """Sample standard deviation (None below two values)."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _noise(row: dict[str, Any]) -> float | None:
    """Twice the standard error of (bf16 mean - fp32 mean) from the seed spread in each precision."""
    parts = [(row[f"{k}_sd"], row[f"{k}_n"]) for k in ("fp32", "bf16")]
    if any(sd is None for sd, _ in parts):
        return None
    return 2.0 * math.sqrt(sum(sd**2 / n for sd, n in parts))


def combination_rows(runs: Sequence[dict[str, Any]], tolerance: float) -> list[dict[str, Any]]:
    """One row per combination: mean Pearson per precision over ok seeds, the difference, statuses."""
    from src.sweep.summarize import cell_outcome

    by_combo: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        by_combo[(run["first"], run["core"], run["final"])][run["precision"]].append(run)
    rows = []
    for (first, core, final), per_precision in sorted(by_combo.items()):
        row: dict[str, Any] = {"first": first, "core": core, "final": final}
        means = {}
        for precision in PRECISIONS:
            done = per_precision.get(precision, [])
            values = [v for r in done if r["status"] == "ok" and (v := _finite(r["metrics"].get("val/pearson")))]
            mean = sum(values) / len(values) if values else None
            means[precision] = mean
            key = "fp32" if precision == "32-true" else "bf16"
            row[f"{key}_pearson"] = mean
            row[f"{key}_n"] = len(values)
            row[f"{key}_sd"] = _sd(values)
            row[f"{key}_status"] = ", ".join(
                f"{sum(r['status'] == s for r in done)} {s}"
                for s in ("ok", "collapsed", "diverged", "failed", "rejected")
                if any(r["status"] == s for r in done)
            )
        fp32, bf16 = means["32-true"], means["bf16-mixed"]
        row["diff"] = None if fp32 is None or bf16 is None else bf16 - fp32
        row["within"] = None if row["diff"] is None else abs(row["diff"]) <= tolerance
        row["noise"] = _noise(row)
        row["within_noise"] = None if row["diff"] is None or row["noise"] is None else abs(row["diff"]) <= row["noise"]
        statuses = [r["status"] for done in per_precision.values() for r in done]
        row["outcome"] = "ok" if row["diff"] is not None else cell_outcome(s for s in statuses if s != "ok")
        errors = [r.get("error") for done in per_precision.values() for r in done if r.get("error")]
        row["error"] = errors[0] if errors else ""
        rows.append(row)
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if digits == 4 else f"{value:.{digits}f}"
    return str(value)


COLUMNS = (
    "first",
    "core",
    "final",
    "fp32_pearson",
    "bf16_pearson",
    "diff",
    "within",
    "noise",
    "within_noise",
    "fp32_status",
    "bf16_status",
)


def markdown_table(rows: Sequence[dict[str, Any]], tolerance: float) -> str:
    header = [*COLUMNS[:3], "fp32 r", "bf16 r", "bf16 - fp32", f"within {tolerance}", "2 SE (seeds)", "within noise"]
    header += ["fp32 runs", "bf16 runs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        cells = [r["first"], r["core"], r["final"], _fmt(r["fp32_pearson"]), _fmt(r["bf16_pearson"])]
        cells += [_fmt(r["diff"], 4), _fmt(r["within"]), _fmt(r["noise"]), _fmt(r["within_noise"])]
        cells += [r["fp32_status"] or "-", r["bf16_status"] or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r[k] is None else r[k] for k in COLUMNS})


def write_heatmap(path: Path, rows: Sequence[dict[str, Any]], families: dict[str, list[str]], title: str) -> None:
    from src.sweep.summarize import heatmap_figure

    label = "r (bf16 - fp32)"  # the colour bar reads "mean r (bf16 - fp32)"
    not_ok = ("collapsed", "diverged", "failed", "rejected")  # marks the cell "*" (some seeds not ok)
    cells = [
        {
            **r,
            f"{label}_mean": r["diff"],
            "status": None,
            "error": r["error"] or any(s in r["fp32_status"] + r["bf16_status"] for s in not_ok),
        }
        for r in rows
    ]
    spread = max([abs(r["diff"]) for r in rows if r["diff"] is not None] + [0.05])
    fig = heatmap_figure(cells, label, families["first"], families["core"], families["final"], title, -spread, spread)
    fig.savefig(path, dpi=150)


def headline(rows: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]], tolerance: float, wall: float) -> str:
    compared = [r for r in rows if r["diff"] is not None]
    within = sum(bool(r["within"]) for r in compared)
    worst = max(compared, key=lambda r: abs(r["diff"]), default=None)
    collapsed = {p: sum(r["status"] == "collapsed" for r in runs if r["precision"] == p) for p in PRECISIONS}
    text = f"precision check: {within}/{len(compared)} combinations within {tolerance} (bf16-mixed vs 32-true, mean r)"
    judged = [r for r in compared if r["within_noise"] is not None]
    if judged:
        text += f", {sum(bool(r['within_noise']) for r in judged)}/{len(judged)} within seed noise"
    if worst is not None:
        text += f"; worst {worst['first']}-{worst['core']}-{worst['final']} {worst['diff']:+.3f}"
    text += f"; collapsed runs fp32 {collapsed['32-true']}, bf16 {collapsed['bf16-mixed']}"
    return text + f"; {len(runs)} runs in {wall:.0f} s"


def setup_lines(args: argparse.Namespace, widths: dict[str, list[str]]) -> str:
    """The Markdown report's opening: the machine, the budget and the widths (each combination's reductions)."""
    text = (
        f"{args.accelerator}, CPU {cpu_name()}, {args.threads} threads per run; {args.steps} steps of batch "
        f"{args.batch_size} per run, seeds {args.seeds}{', fair recipe' if args.fair else ''}\n\n"
    )
    if not args.reduced:
        return text + "Widths: as configured.\n\n"
    lines = [f"- {name}: {' '.join(overrides) or 'no reduction'}" for name, overrides in widths.items()]
    return text + "Widths reduced (--reduced, bench/reduced_widths.py):\n\n" + "\n".join(lines) + "\n\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--families", default="all", help="comma-separated families for every group (default: all)")
    for group in GROUPS:
        p.add_argument(f"--{group}", default=None, help=f"families of the {group} group only (default: --families)")
    p.add_argument(
        "--combos",
        default=None,
        help="comma-separated first-core-final combinations, or dream_cnn / dream_rnn (instead of a product)",
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps per run (default 60)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n", type=int, default=6000, help="synthetic reads (10 %% go to validation)")
    p.add_argument("--precisions", default=",".join(PRECISIONS))
    p.add_argument("--accelerator", default="cpu", help="cpu, gpu, auto, ... (Lightning accelerator)")
    p.add_argument("--devices", default="1", help="devices per run (default 1)")
    p.add_argument("--workers", type=int, default=1, help="runs at once, in worker processes (default 1: in-process)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    p.add_argument("--budget-s", type=float, default=0.0, help="start no run that would end after this (0: no limit)")
    p.add_argument("--tolerance", type=float, default=0.03)
    p.add_argument("--override", action="append", default=[], help="extra Hydra override for every run (repeat)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--tag", default=None, help="output name part (default: the accelerator)")
    p.add_argument(
        "--fair",
        action="store_true",
        help="the fair recipe: one range test per combination (fp32, first seed) sets recipe.lr for both precisions, "
        "and a collapsed or diverged run is retried at a third of the peak (--retries times)",
    )
    p.add_argument("--retries", type=int, default=2, help="with --fair: retries of a collapsed or diverged run")
    p.add_argument(
        "--reduced",
        action="store_true",
        help="every combination at the fair-recipe bench's reduced widths (bench/reduced_widths.py), a CPU's time",
    )
    p.add_argument("--smoke", action="store_true", help="bhi x bhi x bhi, tiny widths, 1 seed, 4 steps")
    args = p.parse_args(argv)
    if args.smoke:
        args.families, args.seeds, args.steps, args.batch_size, args.n = "bhi", "0", 4, 16, 300
        args.override = [*SMOKE_OVERRIDES, *args.override]
        args.tag = args.tag or "smoke"
    args.tag = args.tag or args.accelerator
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from src.utils.io import json_safe

    args = parse_args(argv)
    families = menu()
    for group in GROUPS:
        chosen = getattr(args, group) or args.families
        if chosen == "all":
            continue
        wanted = [f.strip() for f in chosen.split(",") if f.strip()]
        unknown = [f for f in wanted if f not in families[group]]
        if unknown:
            flag = f"--{group}" if getattr(args, group) else "--families"
            print(f"error: {flag}: unknown {group} families {unknown}; conf/{group}/ has {families[group]}")
            return 2
        families[group] = wanted
    seeds = [int(s) for s in args.seeds.split(",")]
    precisions = [p.strip() for p in args.precisions.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"precision_check_{os.getpid()}"
    common = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "n": args.n,
        "accelerator": args.accelerator,
        "devices": args.devices,
        "threads": args.threads,
        "overrides": list(args.override),
        "scratch": str(scratch),
    }
    if args.combos:
        known, combos = menu(), []
        for text in (c.strip() for c in args.combos.split(",") if c.strip()):
            parts = blocks(text)
            if len(parts) != 3 or any(f not in known[g] for g, f in zip(GROUPS, parts, strict=False)):
                print(
                    f"error: --combos: {text!r} is not first-core-final (families of conf/first, core, final) "
                    f"nor one of {sorted(BLOCKS_OF)}"
                )
                return 2
            combos.append(parts)
        families = {g: sorted({c[i] for c in combos}) for i, g in enumerate(GROUPS)}
    else:
        combos = list(itertools.product(families["first"], families["core"], families["final"]))
    # --reduced: each combination's width overrides (every run and range test of it)
    widths = {f"{f}-{c}-{h}": reduced(f"{f}-{c}-{h}") for f, c, h in combos} if args.reduced else {}
    peaks: dict[str, Any] = {}
    if args.fair:  # one peak per combination, shared by its seeds and both precisions
        common["retries"] = args.retries
        for f, c, h in combos:
            name = f"{f}-{c}-{h}"
            try:
                job = {**common, "first": f, "core": c, "final": h, "seed": seeds[0], "widths": widths.get(name, [])}
                peaks[name] = fair_peak(job)
            except Exception as err:  # the combination's runs then use the recipe's peak, and say so
                peaks[name] = {"peak": None, "error": str(err).splitlines()[0]}
            print(f"{name}: range test peak {peaks[name].get('peak')}", flush=True)
    # seed-major, both precisions of a combination back to back: a budget cut leaves balanced pairs
    jobs = [
        {**common, "first": f, "core": c, "final": h, "seed": s, "precision": p}
        | {"peak": (peaks.get(f"{f}-{c}-{h}") or {}).get("peak"), "widths": widths.get(f"{f}-{c}-{h}", [])}
        for s in seeds
        for f, c, h in combos
        for p in precisions
    ]
    print(
        f"{len(combos)} combinations x {len(precisions)} precisions x {len(seeds)} seeds = {len(jobs)} runs", flush=True
    )
    started = time.time()
    runs: list[dict[str, Any]] = []

    def report(run: dict[str, Any]) -> None:
        runs.append(run)
        r = (run.get("metrics") or {}).get("val/pearson")
        name = f"{run['first']}-{run['core']}-{run['final']} seed {run['seed']} {run['precision']}"
        detail = f"r={r:.4f}" if isinstance(r, float) else run.get("error", "")
        print(f"[{len(runs)}/{len(jobs)}] {name}: {run['status']} {detail} ({run['seconds']:.1f} s)", flush=True)

    def time_left_for_one() -> bool:
        if args.budget_s <= 0:
            return True
        mean = sum(r["seconds"] for r in runs) / len(runs) if runs else 0.0
        return time.time() - started + mean <= args.budget_s

    pending = list(jobs)
    if args.workers <= 1:
        while pending and time_left_for_one():
            report(run_one(pending.pop(0)))
    else:
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
            active: set[Future] = set()
            while pending or active:
                while pending and len(active) < args.workers and time_left_for_one():
                    active.add(pool.submit(run_one, pending.pop(0)))
                if not active:
                    break
                finished, active = wait(active, return_when=FIRST_COMPLETED)
                for future in finished:
                    report(future.result())
    wall = time.time() - started
    for job in pending:  # cut by the budget
        runs.append({k: job[k] for k in ("first", "core", "final", "seed", "precision")} | {"status": "not run"})

    done = [r for r in runs if r["status"] != "not run"]
    rows = combination_rows(done, args.tolerance)
    stem = args.out / f"precision_{args.tag}"
    table = markdown_table(rows, args.tolerance)
    settings = {k: v for k, v in vars(args).items() if k not in ("out",)}
    payload = {
        "settings": settings,
        "cpu_model": cpu_name(),
        "reduced_widths": widths,  # --reduced: combination -> its width overrides ({} : configured widths)
        "wall_seconds": round(wall, 1),
        "rows": rows,
        "runs": runs,
        "peaks": peaks,
    }
    # a collapsed run's Pearson is NaN: JSON null
    (stem.with_suffix(".json")).write_text(
        json.dumps(json_safe(payload), indent=1, default=str, allow_nan=False) + "\n"
    )
    (stem.with_suffix(".md")).write_text(setup_lines(args, widths) + table)
    write_csv(stem.with_suffix(".csv"), rows)
    title = f"val Pearson, bf16-mixed - 32-true\nseeds {args.seeds}, {args.steps} steps"
    title += ", reduced widths" if args.reduced else ""
    if rows:
        write_heatmap(stem.parent / f"{stem.name}_diff.png", rows, families, title)
    print(table)
    print(headline(rows, done, args.tolerance, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
