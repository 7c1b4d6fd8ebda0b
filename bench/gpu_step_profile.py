"""Where a GPU training step's time goes: eager vs ``torch.compile``, and the top kernels.

    python bench/gpu_step_profile.py --model dream_cnn --batch 1024        # needs a CUDA device
    python bench/gpu_step_profile.py --smoke                                # CPU, tiny model (the test)

Builds the experiment's LightningModule as ``train.py`` does (``trainer=gpu``: bf16
autocast, the final block in float32, cuDNN autotuning), takes one real training batch
of ``--data`` (default: the DREAM sample) and times the same optimizer step (forward,
objective loss, backward, AdamW) on it, without data loading, in two forms: eager, and
with the composed network under ``torch.compile`` (Inductor fuses the BatchNorm, SiLU,
squeeze-excitation and concatenation kernels around the convolutions). A
``torch.profiler`` table of the eager step's most expensive kernels follows. Table on
stdout, JSON in ``bench/results/gpu_step_profile-<model>-b<batch>.json``; the last line
is the headline (step ms and the paper's 80 x 1,000-step run in minutes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from train_throughput import DATA, PAPER_STEPS, SMOKE, compose, sync  # noqa: E402  (the same set-up as there)
from train_throughput import build as build_module_and_data  # noqa: E402


def build(args: argparse.Namespace) -> tuple[Any, dict[str, torch.Tensor]]:
    """The module on the device and one training batch of ``args.batch`` reads."""
    overrides = [
        f"experiment={args.model}",
        "data=dream",
        f"data.path={args.data}",
        f"recipe.batch_size={args.batch}",
        "trainer=gpu" if args.device == "cuda" else "trainer=cpu",
        "logger=none",
        *(SMOKE if args.smoke else []),
    ]
    torch.manual_seed(0)
    module, datamodule = build_module_and_data(compose(overrides))
    batch = next(iter(datamodule.train_dataloader()))
    module.to(args.device).train()
    return module, {k: v.to(args.device) for k, v in batch.items()}


def step_fn(module, net, optimizer, bf16: bool, device: str):
    """One optimizer step of ``net`` (the module's network or its compiled form) on a fixed batch."""

    def step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            head, _ = net(batch["x"], batch)
            loss = module.objective.loss(head, batch["y"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def time_steps(step, batch, warmup: int, steps: int, device: str) -> tuple[list[float], float]:
    """Per-round step milliseconds (3 rounds of ``steps``) after ``warmup`` untimed steps; warm-up seconds."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step(batch)
    sync(device)
    warm = time.perf_counter() - t0
    rounds = []
    for _ in range(3):
        sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            step(batch)
        sync(device)
        rounds.append((time.perf_counter() - t) / steps * 1e3)
    return rounds, warm


def kernel_table(step, batch, device: str, rows: int) -> list[dict[str, Any]]:
    """The ``rows`` most expensive operators of 5 steps by self device (or CPU) time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(5):
            step(batch)
        sync(device)
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0.0), reverse=True)
    total = sum(getattr(e, key, 0.0) for e in events) or 1.0
    return [
        {"op": e.key, "ms_per_step": getattr(e, key, 0.0) / 5e3, "share": getattr(e, key, 0.0) / total}
        for e in events[:rows]
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dream_cnn", help="an experiment name (conf/experiment)")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round (3 rounds)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-compile", action="store_true", help="eager only")
    p.add_argument("--rows", type=int, default=15, help="operators in the profile table")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--smoke", action="store_true", help="CPU, tiny model, batch 8, 1 step, no compile")
    args = p.parse_args(argv)
    if args.smoke:
        args.batch, args.steps, args.warmup, args.no_compile, args.rows = 8, 1, 1, True, 5
    args.device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if args.device == "cpu" and not args.smoke:
        print("error: no CUDA device (use --smoke for the CPU check)")
        return 2
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high")
    module, batch = build(args)
    bf16 = args.device == "cuda"
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    forms: dict[str, Any] = {"eager": module.net}
    if not args.no_compile:
        forms["torch.compile"] = torch.compile(module.net)
    results = []
    for name, net in forms.items():
        step = step_fn(module, net, optimizer, bf16, args.device)
        rounds, warm = time_steps(step, batch, args.warmup, args.steps, args.device)
        ms = statistics.median(rounds)
        results.append({"form": name, "step_ms": ms, "rounds_ms": rounds, "warmup_s": warm})
        print(f"{name:>14}: {ms:8.2f} ms/step (rounds {', '.join(f'{r:.2f}' for r in rounds)}; warm-up {warm:.1f} s)")
    table = kernel_table(step_fn(module, module.net, optimizer, bf16, args.device), batch, args.device, args.rows)
    print(f"\ntop operators of the eager step ({'device' if args.device == 'cuda' else 'CPU'} self time)")
    print("| operator | ms/step | share |\n|---|---:|---:|")
    for row in table:
        print(f"| {row['op'][:70]} | {row['ms_per_step']:.2f} | {row['share']:.1%} |")
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    payload = {
        "model": args.model,
        "batch": args.batch,
        "device": device_name,
        "torch": torch.__version__,
        "command": " ".join(["bench/gpu_step_profile.py", *(argv if argv is not None else sys.argv[1:])]),
        "forms": results,
        "top_operators": table,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gpu_step_profile-{args.model}-b{args.batch}.json").write_text(json.dumps(payload, indent=1) + "\n")
    best = min(results, key=lambda r: r["step_ms"])
    minutes = PAPER_STEPS * best["step_ms"] / 6e4
    print(
        f"{args.model} batch={args.batch} on {device_name}: {best['form']} {best['step_ms']:.1f} ms/step "
        f"(80 x 1,000 steps ~ {minutes:.0f} min, steps only)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
