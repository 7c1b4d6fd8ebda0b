"""Training and prediction throughput of the real LightningModule on the DREAM sample.

    python bench/train_throughput.py --model dream_cnn --batch 256 --steps 5 --trainer cpu_fast
    python bench/train_throughput.py --model dream_cnn --batch 256 --steps 5 --trainer cpu_fast --bare
    python bench/train_throughput.py --model dream_cnn --batch 256 --steps 4 --compare --rounds 3 --predict
    python bench/train_throughput.py --device cuda --gpu-suite          # GPU step times, with/without new settings
    python bench/train_throughput.py --smoke                            # 2 steps of a tiny model (the test suite)

``--model`` is an experiment (``conf/experiment/<name>.yaml``: dream_cnn, dream_rnn, dream_attn, autosome, ...);
``--override`` adds Hydra overrides (e.g. ``first=resnet core=bhi``). The module is built, the DREAM sample read
and split, and the batches made exactly as ``train.py`` does; the steps then run through a real
``lightning.Trainer`` (no logger, checkpoints or validation) or, with ``--bare``, through a plain PyTorch loop
over the same module, data loader, optimizer and schedule.

``--compare`` runs several configurations, alternating round by round so that load from other processes hits them
alike: fp32 (``trainer=cpu``), the preset (``--trainer``, default ``cpu_fast``) and the preset's bare loop. Each
round runs in a fresh process, because a preset may change process-wide state (``keep_freed_memory``: the C
library's allocator) that would otherwise carry over into the next configuration's round. It reports the speed-up
over fp32 and Lightning's overhead over the bare loop. Each configuration's figure is the median over rounds of
(sequences / wall second) over ``--steps`` timed steps after ``--warmup`` untimed steps; ``cpu seq/s`` divides by
the process's CPU seconds instead, a figure that other processes' load moves less. ``--predict`` adds prediction
throughput: the fp32 two-pass reverse-complement average against ``predict_sequences``'s fast path (inference
mode, bf16 where native, both strands in one forward). ``--gpu-suite`` times DREAM-CNN/RNN/Attn at batch 1024 on
CUDA with ``trainer=gpu`` (new settings) against ``nan_check_every=1`` (the old per-step host sync) and fp32, and
estimates the paper's 80 x 1,000-step DREAM-CNN run.

Prints a table, writes ``bench/results/train_throughput-<host>-<model>-<device>-b<batch>.json`` and ends
with ``<model> <precision> batch=<N>: <X> seq/s``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "dream" / "train_sample.txt"
PAPER_STEPS = 80 * 1000
SMOKE = [  # a tiny DREAM-CNN-shaped model: BHI stem, autosome core and soft-bin head, autosome processing
    "first.block.out_channels=16",
    "core.block.stage_widths=[8,8]",
    "core.block.expansion=2",
]


@dataclass
class Config:
    """One configuration to time: Hydra overrides and whether Lightning or the bare loop runs it."""

    name: str
    overrides: list[str]
    bare: bool = False
    seq_per_s: list[float] = field(default_factory=list)
    cpu_seq_per_s: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)
    precision: str = ""
    state: dict[str, Any] = field(default_factory=dict)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.run_dir = tempfile.mkdtemp(prefix="prixfixe_bench_")
    return cfg


def base_overrides(args: argparse.Namespace) -> list[str]:
    experiments = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    if args.model not in experiments:
        sys.exit(f"error: --model {args.model!r} is not an experiment; choose from {', '.join(experiments)}")
    return [
        f"experiment={args.model}",
        "data=dream",
        f"data.path={args.data}",
        f"recipe.batch_size={args.batch}",
        "logger=none",
        *(SMOKE if args.smoke else []),
        *args.override,
    ]


def build(cfg) -> tuple[Any, Any]:
    """The module and its set-up data module, as ``train.py`` builds them."""
    from src.train_task import build_datamodule, build_module

    module = build_module(cfg)
    datamodule = build_datamodule(cfg, module)
    datamodule.setup("fit")
    module.objective.fit(datamodule.train_targets)
    return module, datamodule


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StepClock:
    """Wall and CPU time from step ``warmup``'s start to step ``warmup + steps - 1``'s end.

    The device is synchronised only at those two points, so the timed steps run as they would in training.
    """

    def __init__(self, device: str, warmup: int, steps: int) -> None:
        self.device = device
        self.warmup = warmup
        self.steps = steps
        self.start: tuple[float, float] | None = None
        self.stop: tuple[float, float] | None = None

    def step_start(self, step: int) -> None:
        if step == self.warmup:
            sync(self.device)
            self.start = (time.perf_counter(), time.process_time())

    def step_end(self, step: int) -> None:
        if step == self.warmup + self.steps - 1:
            sync(self.device)
            self.stop = (time.perf_counter(), time.process_time())

    def seconds(self) -> tuple[float, float]:
        if self.start is None or self.stop is None:
            raise RuntimeError("the timed steps did not run")
        return self.stop[0] - self.start[0], self.stop[1] - self.start[1]


def lightning_clock(clock: StepClock):
    import lightning as L

    class _Clock(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            clock.step_start(trainer.global_step)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            clock.step_end(trainer.global_step - 1)

    return _Clock()


def run_lightning(cfg, module, datamodule, steps: int, warmup: int, device: str) -> StepClock:
    """``warmup + steps`` optimizer steps through a real Lightning Trainer built from ``cfg.trainer``."""
    from hydra.utils import instantiate

    from src.train_task import EpochStream

    clock = StepClock(device, warmup, steps)
    trainer = instantiate(
        cfg.trainer,
        default_root_dir=cfg.paths.run_dir,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EpochStream(), lightning_clock(clock)],
        max_epochs=-1,
        max_steps=warmup + steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=datamodule)
    return clock


def run_bare(cfg, module, datamodule, steps: int, warmup: int, device: str) -> StepClock:
    """The same module, loader, optimizer and schedule in a plain loop (autocast per ``trainer.precision``)."""
    from hydra.utils import instantiate

    recipe = cfg.recipe
    module.to(device).train()
    lr = float(recipe.lr)
    optimizer = instantiate(recipe.optimizer)(module.parameters(), lr=lr)
    scheduler = None
    if recipe.scheduler:
        scheduler = instantiate(recipe.scheduler)(optimizer, total_steps=warmup + steps, lr=lr)
    precision = str(cfg.trainer.precision)
    bf16 = precision.startswith("bf16")
    clip = cfg.trainer.get("gradient_clip_val")
    clock = StepClock(device, warmup, steps)
    step, epoch = 0, 0
    while step < warmup + steps:
        sampler = datamodule.train_dataloader()
        sampler.batch_sampler.set_epoch(epoch)
        module.on_train_epoch_start()
        for batch_idx, batch in enumerate(sampler):
            if step >= warmup + steps:
                break
            clock.step_start(step)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
                loss = module.training_step(batch, batch_idx)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(module.parameters(), float(clip))
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            clock.step_end(step)
            step += 1
        epoch += 1
    return clock


def prepare(config: Config, args: argparse.Namespace) -> None:
    """Compose, apply the preset's process settings and precision fallback, and build the module."""
    from src.host_memory import keep_freed_memory
    from src.precision import apply_precision_fallback

    cfg = compose(config.overrides)
    keep_freed_memory(cfg.get("keep_freed_memory", False))  # process-wide: why --compare runs each round apart
    if args.device.startswith("cuda"):
        from omegaconf import open_dict

        with open_dict(cfg):
            cfg.trainer.accelerator = "gpu"
            cfg.trainer.devices = 1
    config.precision = apply_precision_fallback(cfg)
    torch.manual_seed(0)
    module, datamodule = build(cfg)
    if config.bare:
        torch.backends.cudnn.benchmark = bool(cfg.trainer.get("benchmark", False))
    config.state = {"cfg": cfg, "module": module, "datamodule": datamodule}


ROUND_TAG = "ROUND "


def time_round_apart(config: Config, args: argparse.Namespace) -> None:
    """One round of ``config`` in a fresh process (``--one``): process-wide settings stay with their configuration."""
    spec = json.dumps({"name": config.name, "overrides": config.overrides, "bare": config.bare})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", spec, "--batch", str(args.batch)]
    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(ROUND_TAG)]
    if done.returncode != 0 or not lines:
        sys.exit(f"error: the round of {config.name!r} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    row = json.loads(lines[-1][len(ROUND_TAG) :])
    config.precision = row["precision"]
    config.seq_per_s.append(row["seq_per_s"])
    config.cpu_seq_per_s.append(row["cpu_seq_per_s"])
    config.step_ms.append(row["step_ms"])


def measure_one(args: argparse.Namespace) -> None:
    """``--one``: build one configuration, time one round and print it as a ``ROUND {json}`` line."""
    spec = json.loads(args.one)
    config = Config(spec["name"], list(spec["overrides"]), bare=bool(spec["bare"]))
    prepare(config, args)
    time_round(config, args)
    row = {
        "precision": config.precision,
        "seq_per_s": config.seq_per_s[0],
        "cpu_seq_per_s": config.cpu_seq_per_s[0],
        "step_ms": config.step_ms[0],
    }
    print(ROUND_TAG + json.dumps(row), flush=True)


def time_round(config: Config, args: argparse.Namespace) -> None:
    state = config.state
    runner = run_bare if config.bare else run_lightning
    clock = runner(state["cfg"], state["module"], state["datamodule"], args.steps, args.warmup, args.device)
    wall, cpu = clock.seconds()
    n = clock.steps * args.batch
    config.seq_per_s.append(n / wall)
    config.cpu_seq_per_s.append(n / cpu if cpu > 0 else float("nan"))
    config.step_ms.append(wall / clock.steps * 1e3)


def predict_throughput(args: argparse.Namespace, overrides: list[str]) -> dict[str, Any]:
    """Sequences/s of the fp32 two-pass reverse-complement average against ``predict_sequences``'s fast path."""
    from src.datamodules.readers import read_dream
    from src.inference import predict_sequences, prepare_sequences
    from src.train_task import build_module

    cfg = compose(overrides)
    torch.manual_seed(0)  # the same weights every run, so the max |diff| column compares like with like
    module = build_module(cfg).to(args.device).eval()
    sequences = read_dream(args.data).sequences[: args.predict_n]
    proc = module.processing
    batch_size = 512

    def reference() -> torch.Tensor:
        fields = {k: torch.from_numpy(v) for k, v in prepare_sequences(proc, sequences).items()}
        out = []
        with torch.inference_mode():
            for start in range(0, len(sequences), batch_size):
                part = {k: v[start : start + batch_size].to(args.device) for k, v in fields.items()}
                n = len(next(iter(part.values())))
                zeros = torch.zeros(n, dtype=torch.long, device=args.device)
                x = proc.make_batch(part, torch.zeros(n, 1, device=args.device), zeros, False)["x"].float()
                pred = module(x)
                if proc.rc_average:
                    pred = 0.5 * (pred + module(proc.reverse_complement(x)))
                out.append(pred.float().cpu())
        return torch.cat(out)

    def fast() -> torch.Tensor:  # what predict.py and evaluate.py run by default: precision=auto
        preds = predict_sequences(module, sequences, batch_size, device=args.device, progress=False, precision="auto")
        return torch.from_numpy(preds)

    def fast_fp32() -> torch.Tensor:
        preds = predict_sequences(module, sequences, batch_size, device=args.device, progress=False, precision="32")
        return torch.from_numpy(preds)

    rows: dict[str, list[float]] = {"fp32 two passes": [], "fast fp32": [], "fast": []}
    outputs = {}
    runs = {"fp32 two passes": reference, "fast fp32": fast_fp32, "fast": fast}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        for name, fn in runs.items():
            sync(args.device)
            t0 = time.perf_counter()
            outputs[name] = fn()
            sync(args.device)
            rows[name].append(len(sequences) / (time.perf_counter() - t0))
    ref = outputs["fp32 two passes"]
    return {
        "n": len(sequences),
        "rc_average": bool(proc.rc_average),
        "seq_per_s": {name: statistics.median(v) for name, v in rows.items()},
        "max_abs_diff_vs_fp32": {name: float((out - ref).abs().max()) for name, out in outputs.items()},
    }


def matmul_peak(device: str, n: int = 2048, budget_s: float = 2.0) -> dict[str, float]:
    """GFLOP/s of an ``n x n`` matrix product in fp32 and bf16: what this hardware's arithmetic allows.

    Each precision gets about ``budget_s`` seconds: a precision this CPU computes only slowly (bf16 on
    a CPU without AVX512-BF16 or AMX runs a generic kernel at about 1 GFLOP/s) is measured on smaller
    matrices, halving ``n`` until one product takes a third of the budget, and with fewer repeats.
    """
    peak = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        size = n
        while True:
            a = torch.randn(size, size, dtype=dtype, device=device)
            b = torch.randn(size, size, dtype=dtype, device=device)
            sync(device)
            start = time.perf_counter()
            a @ b  # warm-up (library dispatch and caches), timed to size the measurement
            sync(device)
            first = time.perf_counter() - start
            if first * 3 <= budget_s or size <= 128:
                break
            size //= 2
        a @ b  # a second warm-up at the chosen size
        repeats = max(1, min(10, int(budget_s / max(first, 1e-6))))
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync(device)
        peak[name] = 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9
    return peak


def flop_per_sequence(overrides: list[str], device: str, batch: int = 16) -> float:
    """Forward + backward FLOPs of one training sequence (convolutions and matrix products, as PyTorch counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = compose(overrides)
    torch.manual_seed(0)
    module, datamodule = build(cfg)
    module.to(device).train()
    batch_ = next(iter(datamodule.train_dataloader()))
    batch_ = {k: v[:batch].to(device) for k, v in batch_.items()}
    with FlopCounterMode(display=False) as counter:
        module.training_step(batch_, 0).backward()
    return counter.get_total_flops() / len(batch_["y"])


def roofline(args: argparse.Namespace, overrides: list[str], measured: float) -> dict[str, float]:
    """How near the measured sequences/s come to the bf16 matrix-product peak of this hardware."""
    peak = matmul_peak(args.device, n=256 if args.smoke else 2048, budget_s=0.2 if args.smoke else 2.0)
    flops = flop_per_sequence(overrides, args.device)
    ceiling = peak["bf16"] * 1e9 / flops
    print(
        f"roofline: {flops / 1e9:.2f} GFLOP per sequence per step; matrix products run at {peak['fp32']:.0f} GFLOP/s "
        f"fp32 and {peak['bf16']:.0f} GFLOP/s bf16 here, a ceiling of {ceiling:.0f} seq/s; "
        f"measured {measured:.1f} seq/s = {100 * measured / ceiling:.0f} % of it"
    )
    return {
        "gflop_per_sequence": flops / 1e9,
        "matmul_gflops": peak,
        "ceiling_seq_per_s": ceiling,
        "fraction_of_ceiling": measured / ceiling,
    }


def configurations(args: argparse.Namespace, base: list[str]) -> list[Config]:
    if args.compare:
        return [
            Config("fp32", [*base, "trainer=cpu", "trainer.precision=32-true"]),
            Config(args.trainer, [*base, f"trainer={args.trainer}"]),
            Config(f"{args.trainer} bare", [*base, f"trainer={args.trainer}"], bare=True),
        ]
    overrides = [*base, f"trainer={args.trainer}"]
    if args.precision:
        overrides.append(f"trainer.precision={args.precision}")
    return [Config(f"{args.trainer}{' bare' if args.bare else ''}", overrides, bare=args.bare)]


def gpu_configurations(base: list[str]) -> list[Config]:
    return [
        Config(
            "fp32, no autotuning, NaN check every step",
            [*base, "trainer=gpu", "trainer.precision=32-true", "trainer.benchmark=false", "nan_check_every=1"],
        ),
        Config("gpu, NaN check every step", [*base, "trainer=gpu", "nan_check_every=1"]),
        Config("gpu (new default)", [*base, "trainer=gpu"]),
    ]


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict[str, Any]:
    from src.precision import native_bf16

    info: dict[str, Any] = {
        "host": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_native_bf16": native_bf16("cpu"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_training(args: argparse.Namespace, configs: list[Config], apart: bool = False) -> None:
    """Time ``args.rounds`` rounds of every configuration, alternating; ``apart``: each round in its own process."""
    if not apart:
        for config in configs:
            prepare(config, args)
    for _ in range(args.rounds):
        for config in configs:  # alternate: every configuration sees the same share of outside load
            (time_round_apart if apart else time_round)(config, args)


def print_table(model: str, configs: list[Config], batch: int) -> None:
    print(f"{'configuration':46s} {'precision':10s} {'ms/step':>9s} {'seq/s':>8s} {'cpu seq/s':>10s} rounds (seq/s)")
    for c in configs:
        rounds = " ".join(f"{v:.1f}" for v in c.seq_per_s)
        print(
            f"{c.name:46s} {c.precision:10s} {statistics.median(c.step_ms):9.1f} {statistics.median(c.seq_per_s):8.1f} "
            f"{statistics.median(c.cpu_seq_per_s):10.1f} {rounds}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dream_cnn", help="an experiment name (conf/experiment)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before each round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--precision", default=None, help="override the preset's trainer.precision")
    parser.add_argument("--trainer", default="cpu_fast", help="trainer preset (conf/trainer)")
    parser.add_argument("--bare", action="store_true", help="a plain PyTorch loop instead of lightning.Trainer")
    parser.add_argument("--compare", action="store_true", help="fp32 vs the preset vs its bare loop, alternating")
    parser.add_argument("--predict", action="store_true", help="also measure prediction sequences/s")
    parser.add_argument("--predict-n", type=int, default=2048, help="sequences predicted per round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpu-suite", action="store_true", help="DREAM-CNN/RNN/Attn at batch 1024 on CUDA")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--override", nargs="*", default=[], help="more Hydra overrides, e.g. core=bhi")
    parser.add_argument("--smoke", action="store_true", help="2 steps of a tiny model, batch 8 (the test suite)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for the JSON")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a --compare round, in its own process
    args = parser.parse_args()
    if args.one:
        if args.threads:
            torch.set_num_threads(args.threads)
        warnings.filterwarnings("ignore")
        logging_off()
        measure_one(args)
        return
    if args.smoke:
        args.batch, args.steps, args.warmup, args.rounds, args.predict_n = 8, 2, 1, 1, 16
    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.data).exists():
        sys.exit(f"error: --data {args.data} does not exist (the DREAM sample, seq<TAB>expression)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: --device cuda but no CUDA GPU is available")
    warnings.filterwarnings("ignore", message=".*self.log.*")  # the bare loop has no trainer to log to
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    logging_off()
    started = time.time()
    load_before = load()

    if args.gpu_suite:
        gpu_suite(args, load_before)
        return
    configs = configurations(args, base_overrides(args))
    run_training(args, configs, apart=args.compare)
    prediction = predict_throughput(args, base_overrides(args)) if args.predict else None
    print(f"{args.model} on {machine()['processor']} ({torch.get_num_threads()} threads), batch {args.batch}")
    print(f"load average before {load_before}, after {load()}")
    print_table(args.model, configs, args.batch)
    headline = configs[1] if args.compare else configs[0]
    result: dict[str, Any] = {
        "model": args.model,
        "batch": args.batch,
        "steps": args.steps,
        "rounds": args.rounds,
        "device": args.device,
        "machine": machine(),
        "load_avg_before": load_before,
        "load_avg_after": load(),
        "seconds": round(time.time() - started, 1),
        "command": " ".join(sys.argv),
        "configurations": [
            {
                "name": c.name,
                "overrides": c.overrides,
                "bare": c.bare,
                "precision": c.precision,
                "seq_per_s": statistics.median(c.seq_per_s),
                "cpu_seq_per_s": statistics.median(c.cpu_seq_per_s),
                "step_ms": statistics.median(c.step_ms),
                "rounds_seq_per_s": c.seq_per_s,
            }
            for c in configs
        ],
    }
    if args.compare:
        fp32, fast, bare = (statistics.median(c.seq_per_s) for c in configs)
        cpu_fp32, cpu_fast, cpu_bare = (statistics.median(c.cpu_seq_per_s) for c in configs)
        result["speedup_vs_fp32"] = fast / fp32
        result["cpu_speedup_vs_fp32"] = cpu_fast / cpu_fp32
        result["lightning_overhead"] = bare / fast - 1
        print(f"speed-up over fp32: {fast / fp32:.2f}x wall, {cpu_fast / cpu_fp32:.2f}x per CPU second")
        print(f"Lightning overhead over the bare loop: {100 * (bare / fast - 1):+.1f}% wall")
    if args.compare:
        result["roofline"] = roofline(args, configs[1].overrides, statistics.median(configs[1].seq_per_s))
    if prediction is not None:
        result["prediction"] = prediction
        for name, rate in prediction["seq_per_s"].items():
            diff = prediction["max_abs_diff_vs_fp32"][name]
            print(f"predict {name:16s} {rate:8.1f} seq/s  (max |diff| vs fp32 two passes {diff:.2g})")
    write_json(args, result)
    print(f"{args.model} {headline.precision} batch={args.batch}: {statistics.median(headline.seq_per_s):.1f} seq/s")


def gpu_suite(args: argparse.Namespace, load_before: list[float]) -> None:
    """DREAM-CNN/RNN/Attn at batch 1024 on CUDA: fp32, the old per-step NaN sync, the new gpu preset."""
    if not args.device.startswith("cuda"):
        sys.exit("error: --gpu-suite needs --device cuda")
    args.batch = 1024 if args.batch == 256 else args.batch
    rows = []
    for model in ("dream_cnn", "dream_rnn", "dream_attn"):
        args.model = model
        configs = gpu_configurations(base_overrides(args))
        run_training(args, configs)
        print(f"== {model} batch {args.batch} on {torch.cuda.get_device_name(0)}")
        print_table(model, configs, args.batch)
        for c in configs:
            ms = statistics.median(c.step_ms)
            rows.append(
                {
                    "model": model,
                    "name": c.name,
                    "precision": c.precision,
                    "step_ms": ms,
                    "seq_per_s": statistics.median(c.seq_per_s),
                    "paper_run_minutes": PAPER_STEPS * ms / 6e4,
                }
            )
            c.state.clear()
        torch.cuda.empty_cache()
    result = {
        "batch": args.batch,
        "machine": machine(),
        "command": " ".join(sys.argv),
        "rows": rows,
        "load_avg_before": load_before,
    }
    args.model = "gpu_suite"
    write_json(args, result)
    cnn = [r for r in rows if r["model"] == "dream_cnn"]
    for r in cnn:
        print(f"DREAM-CNN {r['name']}: 80 x 1,000 steps ~ {r['paper_run_minutes']:.0f} min (steps only)")
    new = cnn[-1]
    print(f"dream_cnn {new['precision']} batch={args.batch}: {new['seq_per_s']:.1f} seq/s")


def write_json(args: argparse.Namespace, result: dict[str, Any]) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"train_throughput-{platform.node()}-{args.model}-{args.device.split(':')[0]}-b{args.batch}"
    path = out / f"{name}{'-smoke' if args.smoke else ''}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"results: {path}")


def logging_off() -> None:
    import logging

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


if __name__ == "__main__":
    main()
