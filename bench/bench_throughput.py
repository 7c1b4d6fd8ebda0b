"""Throughput and memory benchmark: batch building (per processing) and training steps (per combination).

    python bench/bench_throughput.py                       # CPU defaults
    python bench/bench_throughput.py --device cuda --batch-size 1024 --combos dream_cnn dream_rnn dream_attn

Prints a table and writes ``bench/results/<host>-<device>.json``. Targets (checked here, not in tests):
batch building must never be the bottleneck -- at least 20x the training step's sequences/s on CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.blocks.base import resolve_aux  # noqa: E402
from src.datamodules.datamodule import BatchRequest, EncodedDataset  # noqa: E402
from src.datamodules.encoding import encode_array  # noqa: E402
from src.datamodules.processing import build_processing  # noqa: E402
from src.datamodules.store import SequenceStore  # noqa: E402
from src.datamodules.synthetic import generate  # noqa: E402

COMBOS = {
    "autosome": ["first=autosome", "core=autosome", "final=autosome"],
    "resnet": ["first=resnet", "core=resnet", "final=resnet"],
    "dream_cnn": ["experiment=dream_cnn"],
    "dream_rnn": ["experiment=dream_rnn"],
    "dream_attn": ["experiment=dream_attn"],
    "camformers": ["experiment=camformers"],
    "nad": ["experiment=nad"],
    "sysu": ["experiment=sysu"],
    "metformin": ["experiment=metformin"],
}


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def bench_batches(processing_names: list[str], n: int, batch_size: int, repeats: int) -> list[dict]:
    """Sequences per second of prepare (once) and make_batch (per batch) for each processing."""
    records = generate(n, seed=0)
    codes, lengths = encode_array(records.sequences)
    rows = []
    for name in processing_names:
        cfg = compose([f"processing={name}"])
        proc = build_processing(cfg.processing)
        t0 = time.perf_counter()
        fields = proc.prepare(codes, lengths)
        prepare_s = time.perf_counter() - t0
        del fields  # batches prepare their own rows from the store, as in training
        store = SequenceStore.from_matrix(codes, lengths)
        ds = EncodedDataset(store, np.arange(n), np.asarray(records.targets), proc, train=True)
        gen = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(ds), generator=gen).numpy()
        t0 = time.perf_counter()
        for r in range(repeats):
            ds.__getitems__(BatchRequest(idx[(r * batch_size) % len(ds) :][:batch_size], r))
        batch_s = (time.perf_counter() - t0) / repeats
        rows.append(
            {
                "processing": name,
                "prepare_seqs_per_s": n / prepare_s,
                "batch_seqs_per_s": batch_size / batch_s,
                "batch_ms": batch_s * 1e3,
            }
        )
    return rows


def time_steps(module, opt, batch: dict, device: str, bf16: bool, steps: int) -> float:
    """Seconds per optimizer step (after one warm-up step)."""

    def step() -> None:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            head, aux = module.net(batch["x"], batch)
            terms = resolve_aux(aux, module.objective, batch["y"]).values()
            loss = module.objective.loss(head, batch["y"]) + sum(terms, torch.zeros((), device=device))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def bench_training(combos: list[str], device: str, batch_size: int, steps: int, precision: str) -> list[dict]:
    """Optimizer steps per second of the composed module on random encoded batches."""
    from src.train_task import build_module

    rows = []
    for combo in combos:
        cfg = compose(COMBOS[combo])
        module = build_module(cfg).to(device)
        module.train()
        proc = module.processing
        opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
        codes = torch.randint(0, 4, (batch_size, proc.seq_len), dtype=torch.uint8)
        y = torch.rand(batch_size, 1) * 17
        batch = proc.make_batch({"codes": codes}, y, torch.zeros(batch_size, dtype=torch.long), train=True)
        batch = {k: v.to(device) for k, v in batch.items()}
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        dt = time_steps(module, opt, batch, device, precision == "bf16", steps)
        rows.append(
            {
                "combo": combo,
                "params": sum(p.numel() for p in module.parameters()),
                "step_ms": dt * 1e3,
                "seqs_per_s": batch_size / dt,
                "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
                "paper_run_hours": 80_000 * dt / 3600 * (1024 / batch_size),
            }
        )
        del module, opt
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--precision", choices=["32", "bf16"], default=None)
    parser.add_argument("--combos", nargs="*", default=None)
    parser.add_argument("--processings", nargs="*", default=["autosome", "bhi", "unlockdna", "onehot"])
    parser.add_argument("--n", type=int, default=20000, help="synthetic sequences for the batch benchmark")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN pick the fastest conv kernels")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    cuda = args.device == "cuda"
    batch_size = args.batch_size or (1024 if cuda else 64)
    steps = args.steps or (20 if cuda else 3)
    precision = args.precision or ("bf16" if cuda else "32")
    combos = args.combos or (list(COMBOS) if cuda else ["autosome", "dream_rnn"])

    batches = bench_batches(args.processings, args.n, batch_size, repeats=20)
    training = bench_training(combos, args.device, batch_size, steps, precision)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device_name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()

    print(f"device: {device_name}  threads: {torch.get_num_threads()}  batch: {batch_size}  precision: {precision}")
    print(f"{'processing':<12}{'prepare seq/s':>16}{'batch seq/s':>14}{'batch ms':>10}")
    for r in batches:
        print(
            f"{r['processing']:<12}{r['prepare_seqs_per_s']:>16,.0f}{r['batch_seqs_per_s']:>14,.0f}{r['batch_ms']:>10.2f}"
        )
    print(f"{'combination':<12}{'params':>12}{'step ms':>10}{'seq/s':>10}{'peak GPU MB':>13}{'80k-step h':>12}")
    for r in training:
        gpu = "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:,.0f}"
        print(
            f"{r['combo']:<12}{r['params']:>12,}{r['step_ms']:>10.1f}{r['seqs_per_s']:>10,.0f}{gpu:>13}"
            f"{r['paper_run_hours']:>12.2f}"
        )
    print(f"peak host RSS: {peak_rss_mb:,.0f} MB")
    slowest_model = min(r["seqs_per_s"] for r in training)
    slowest_batch = min(r["batch_seqs_per_s"] for r in batches)
    ratio = slowest_batch / slowest_model
    print(f"batch building / training throughput: {ratio:.1f}x (target >= 20x on CPU)")

    out = ROOT / "bench" / "results" / f"{platform.node()}-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"device": device_name, "batch_size": batch_size, "precision": precision}
    payload |= {"batches": batches, "training": training, "peak_rss_mb": peak_rss_mb}
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
