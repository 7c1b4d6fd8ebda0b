"""Full-scale data path: time and peak memory to the first training batch, per processing, cold and warm.

    python bench/data_scale.py --n 6700000 --cli   # the challenge's size (writes /tmp/prixfixe_dream_6700000.txt once)
    python bench/data_scale.py --n 200000 --quick  # a smoke run

Writes a seeded DREAM-format file (17-nt and 13-nt adapters around a random region of
mostly 80 nt, integer "singleton" and non-integer targets, a few lower-case reads and
N letters), then runs one subprocess per case: imports, composes ``experiment=dream_cnn``
with the processing, reads the data (cold: empty cache; warm: cache built by the cold
case) and builds the first training batch. Each case reports wall seconds (process
start to first batch, imports included), peak RSS and bytes held per read. A warm
autosome case also times one validation pass (batches only, no model), and
``--cli`` adds whole ``train.py ... ++trainer.max_steps=1`` runs. Table on stdout,
JSON in ``bench/results/data_scale_<n>.json``; the last line is the headline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEFT, RIGHT = "TGCATTTTTTTCACATC", "GGTTACGGCTGTT"
PROCESSINGS = ("autosome", "bhi", "unlockdna", "onehot")


def write_dream_file(path: Path, n: int, seed: int = 0, chunk: int = 250_000) -> None:
    """A seeded DREAM-format text file of ``n`` reads, written atomically."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as out:
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            body = letters[rng.integers(0, 4, size=(m, 90))]
            # most random regions are 80 nt; about one in five is 70-90 nt, as in the challenge data
            lengths = np.where(rng.random(m) < 0.8, 80, rng.integers(70, 91, size=m))
            n_rows = np.flatnonzero(rng.random(m) < 0.01)  # an N somewhere in 1 % of reads
            body[n_rows, rng.integers(0, 70, size=n_rows.size)] = ord("N")
            lower = rng.random(m) < 0.002  # a few reads in lower case
            singleton = rng.random(m) < 0.5
            values = np.clip(rng.normal(11.0, 2.5, size=m), 0.0, 17.0)
            rows = []
            for i in range(m):
                seq = LEFT + body[i, : lengths[i]].tobytes().decode() + RIGHT
                if lower[i]:
                    seq = seq.lower()
                value = f"{round(values[i]):d}" if singleton[i] else f"{values[i]:.15g}"
                rows.append(f"{seq}\t{value}\n")
            out.write("".join(rows))
    os.replace(tmp, path)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.run_dir = "unused"
    return cfg


def case_main(args: argparse.Namespace) -> None:
    t0 = float(os.environ["PF_BENCH_T0"])
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from src.train_task import build_datamodule, build_module

    overrides = [
        f"experiment={args.experiment}",
        "data=dream",
        f"data.path={args.path}",
        f"data.cache_dir={args.cache_dir}",
        f"processing={args.processing}",
        f"recipe.batch_size={args.batch_size}",
    ]
    if args.val_max_items:
        overrides.append(f"datamodule.val_max_items={args.val_max_items}")
    cfg = _compose(overrides)
    module = build_module(cfg)
    t_imports = time.time() - t0
    rss_imports = peak_rss_mb()
    dm = build_datamodule(cfg, module)
    dm.setup("fit")
    t_setup = time.time() - t0
    batch = next(iter(dm.train_dataloader()))
    t_batch = time.time() - t0
    store = dm.records.store
    n = len(dm.records)
    held = sum(a.nbytes for a in (store.codes, store.offsets, store.lengths, store.hashes))
    held += dm.records.targets.nbytes + dm.records.lines.nbytes
    result = {
        "processing": args.processing,
        "mode": args.mode,
        "n": n,
        "imports_s": round(t_imports, 2),
        "setup_s": round(t_setup, 2),
        "first_batch_s": round(t_batch, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "imports_rss_mb": round(rss_imports, 1),
        "stored_bytes_per_read": round(held / n, 1),
        "private_bytes_per_read": round(_private_bytes() / n, 1),
        "x_shape": list(batch["x"].shape),
        "n_train": dm.train_set.n_sequences,
        "n_val": dm.val_set.n_sequences,
    }
    if args.val_pass:
        t = time.time()
        n_batches = sum(1 for _ in dm.val_dataloader())
        result["val_pass_s"] = round(time.time() - t, 2)
        result["val_batches"] = n_batches
        result["peak_rss_after_val_mb"] = round(peak_rss_mb(), 1)
    print("RESULT " + json.dumps(result), flush=True)


def _private_bytes() -> int:
    """Anonymous (non-file) resident memory of this process, from /proc (0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def spawn(args: argparse.Namespace, processing: str, mode: str, val_pass: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--case", "--path", str(args.path), "--processing", processing, "--mode", mode]
    cmd += ["--cache-dir", str(args.cache_dir), "--experiment", args.experiment, "--batch-size", str(args.batch_size)]
    if val_pass:
        cmd.append("--val-pass")
    if args.val_max_items:
        cmd += ["--val-max-items", str(args.val_max_items)]
    env = {**os.environ, "PF_BENCH_T0": repr(time.time()), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.time() - t
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        sys.exit(f"case {processing}/{mode} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("RESULT ") :])
    result["process_wall_s"] = round(wall, 2)
    return result


def cli_run(args: argparse.Namespace, mode: str) -> dict:
    """The whole ``train.py`` process up to one training step: wall seconds and that process's peak RSS."""
    out = Path("/tmp") / f"prixfixe_bench_cli_{os.getpid()}"
    train_args = [
        f"experiment={args.experiment}",
        "data=dream",
        f"data.path={args.path}",
        f"data.cache_dir={args.cache_dir}",
        f"recipe.batch_size={args.batch_size}",
        "++trainer.max_steps=1",
        "++trainer.num_sanity_val_steps=0",
        "logger=none",
        f"hydra.run.dir={out}",
    ]
    cmd = [sys.executable, __file__, "--train-cli", *train_args]
    t = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=ROOT)
    wall = time.time() - t
    shutil.rmtree(out, ignore_errors=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        sys.exit(f"train.py ({mode}) failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"mode": mode, "wall_s": round(wall, 2), **json.loads(line[len("RESULT ") :])}


def train_cli(argv: list[str]) -> None:
    """Run train.py in this process (as ``python train.py ARGS``) and print its peak RSS at exit."""
    import atexit
    import runpy

    atexit.register(lambda: print("RESULT " + json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True))
    sys.argv = [str(ROOT / "train.py"), *argv]
    sys.path.insert(0, str(ROOT))
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6_700_000, help="reads in the generated file")
    parser.add_argument("--path", type=Path, default=None, help="DREAM file (default /tmp/prixfixe_dream_<n>.txt)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default /tmp/prixfixe_bench_cache)")
    parser.add_argument("--experiment", default="dream_cnn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--processings", default=",".join(PROCESSINGS))
    parser.add_argument("--val-max-items", type=int, default=None)
    parser.add_argument("--cli", action="store_true", help="also time whole train.py runs (one training step)")
    parser.add_argument("--quick", action="store_true", help="autosome only, no validation pass")
    parser.add_argument("--cli-only", action="store_true", help="only the whole train.py runs (implies --cli)")
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processing", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--val-pass", action="store_true", help=argparse.SUPPRESS)
    if len(sys.argv) > 1 and sys.argv[1] == "--train-cli":
        train_cli(sys.argv[2:])
        return
    args = parser.parse_args()
    if args.case:
        case_main(args)
        return
    args.path = args.path or Path(f"/tmp/prixfixe_dream_{args.n}.txt")
    args.cache_dir = args.cache_dir or Path("/tmp/prixfixe_bench_cache")
    if not args.path.exists():
        t = time.time()
        write_dream_file(args.path, args.n)
        print(f"wrote {args.path} ({args.path.stat().st_size / 1e6:.0f} MB) in {time.time() - t:.0f} s", flush=True)
    processings = ["autosome"] if args.quick else args.processings.split(",")
    load = os.getloadavg()
    rows = []
    for i, processing in enumerate([] if args.cli_only else processings):
        shutil.rmtree(args.cache_dir, ignore_errors=True)  # cold: nothing cached
        rows.append(spawn(args, processing, "cold"))
        rows.append(spawn(args, processing, "warm", val_pass=(i == 0 and not args.quick)))
    cli = []
    if args.cli or args.cli_only:
        shutil.rmtree(args.cache_dir, ignore_errors=True)
        cli = [cli_run(args, "cold"), cli_run(args, "warm")]
    if args.cli_only:
        print(f"{args.path}, experiment={args.experiment}, batch {args.batch_size}")
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
        for c in cli:
            print(
                f"train.py ... ++trainer.max_steps=1 ({c['mode']}): {c['wall_s']} s, peak RSS {c['peak_rss_mb']:.0f} MB"
            )
        out = ROOT / "bench" / "results" / f"data_scale_{args.n}_cli_b{args.batch_size}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {"path": str(args.path), "batch_size": args.batch_size, "load_average": load, "cli": cli}
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(
            f"headline: train.py to one step on {args.path.name}: cold {cli[0]['wall_s']} s / "
            f"{cli[0]['peak_rss_mb']:.0f} MB, warm {cli[1]['wall_s']} s / {cli[1]['peak_rss_mb']:.0f} MB "
            f"(load {load[0]:.1f})"
        )
        return
    # "to batch s": process start to the first batch (imports included); "process s" adds the exit and, for the
    # case that times it, the validation pass
    header = f"{'processing':<10} {'mode':<5} {'to batch s':>10} {'imports s':>9} {'setup s':>8} {'process s':>9}"
    header += f" {'peak RSS MB':>11} {'B/read':>7}"
    print(f"{args.path} ({rows[0]['n']:,} reads), experiment={args.experiment}, batch {args.batch_size}")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(header)
    for r in rows:
        print(
            f"{r['processing']:<10} {r['mode']:<5} {r['first_batch_s']:>10.1f} {r['imports_s']:>9.1f} "
            f"{r['setup_s']:>8.1f} {r['process_wall_s']:>9.1f} {r['peak_rss_mb']:>11.0f} "
            f"{r['private_bytes_per_read']:>7.1f}"
        )
    val = next((r for r in rows if "val_pass_s" in r), None)
    if val:
        print(f"one validation pass ({val['n_val']:,} reads, {val['val_batches']} batches): {val['val_pass_s']} s")
    for c in cli:
        print(f"train.py ... ++trainer.max_steps=1 ({c['mode']}): {c['wall_s']} s, peak RSS {c['peak_rss_mb']:.0f} MB")
    results = {
        "n": rows[0]["n"],
        "path": str(args.path),
        "file_bytes": args.path.stat().st_size,
        "experiment": args.experiment,
        "batch_size": args.batch_size,
        "load_average": load,
        "cpus": os.cpu_count(),
        "cases": rows,
        "cli": cli,
    }
    out = ROOT / "bench" / "results" / f"data_scale_{rows[0]['n']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    cold = [r for r in rows if r["mode"] == "cold"]
    warm = [r for r in rows if r["mode"] == "warm"]
    print(
        f"headline: {rows[0]['n']:,} reads to the first batch: cold <= {max(r['first_batch_s'] for r in cold):.1f} s "
        f"/ {max(r['peak_rss_mb'] for r in cold):.0f} MB, warm <= {max(r['first_batch_s'] for r in warm):.1f} s "
        f"/ {max(r['peak_rss_mb'] for r in warm):.0f} MB (load {load[0]:.1f})"
    )


if __name__ == "__main__":
    main()
