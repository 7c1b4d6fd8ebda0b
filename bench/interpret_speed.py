"""ISM speed: mutants per second of ``interpret.py method=ism`` vs sequences per second of ``predict.py``, same model.

    python bench/interpret_speed.py                                  # default combination (autosome), CPU
    python bench/interpret_speed.py --combo dream_cnn --device cuda --reads 64

Both run the same untrained model of the full-size combination at the same precision and batch size
on synthetic reads: prediction through :func:`src.inference.predict_sequences`, ISM through
:func:`src.interpret.attribution.attribute` (tangermeme's saturation mutagenesis on the read model:
3 mutants per read position, each one forward pass). Target: ISM mutants/s >= 0.9x predict seq/s.
Prints a table and writes ``bench/results/interpret_speed-<combo>-<device>.json``; the ratio is the
last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_name  # noqa: E402  (bench/machine.py: a bench script runs with bench/ on sys.path)

from src.datamodules.synthetic import generate  # noqa: E402
from src.entry import register_resolvers  # noqa: E402
from src.inference import predict_sequences  # noqa: E402
from src.interpret.attribution import attribute  # noqa: E402
from src.interpret.read_model import ReadModel, prepare_reads  # noqa: E402
from src.lit_modules.prixfixe_module import module_factory  # noqa: E402

COMBOS = {
    "autosome": [],
    "dream_cnn": ["experiment=dream_cnn"],
    "dream_rnn": ["experiment=dream_rnn"],
    "dream_attn": ["experiment=dream_attn"],
    "camformers": ["experiment=camformers"],
}


def build(combo: str):
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=COMBOS[combo])
    torch.manual_seed(0)
    return module_factory(cfg, 1)().eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--combo", default="autosome", choices=sorted(COMBOS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reads", type=int, default=4, help="reads mutated by ISM")
    parser.add_argument("--predict-reads", type=int, default=1024, help="reads predicted by predict_sequences")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2, help="alternating predict / ISM rounds (fastest kept)")
    parser.add_argument("--precision", default="32")
    args = parser.parse_args()

    module = build(args.combo)
    sequences = list(generate(max(args.predict_reads, args.reads, 10), seed=1).sequences)
    # the same reads' length for both: synthetic reads are 110 nt for most; keep the 110-nt ones
    sequences = [s for s in sequences if len(s) == 110]
    kwargs = {"batch_size": args.batch_size, "device": args.device, "precision": args.precision, "progress": False}

    predict_sequences(module, sequences[: args.batch_size], **kwargs)  # warm-up
    n_predicted = len(sequences[: args.predict_reads])
    reads = prepare_reads(module, sequences[: args.reads])
    model = ReadModel(module, reads.layouts, precision=args.precision, device=args.device)
    n_mutants = 3 * int(reads.seen.sum())  # ISM mutates the positions the model sees
    # alternating rounds, the fastest of each kept: a shared machine's load changes between them
    predict_s = ism_s = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        predict_sequences(module, sequences[: args.predict_reads], **kwargs)
        predict_s = min(predict_s, time.perf_counter() - start)
        start = time.perf_counter()
        attribute(model, reads, "ism", batch_size=args.batch_size, progress=False)
        ism_s = min(ism_s, time.perf_counter() - start)

    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else cpu_name()
    predict_rate, ism_rate = n_predicted / predict_s, n_mutants / ism_s
    rows = [
        ("predict.py path", n_predicted, predict_s, predict_rate),
        ("ISM mutants", n_mutants, ism_s, ism_rate),
    ]
    print(
        f"combo {args.combo}, {device}, precision {args.precision}, batch {args.batch_size}, threads "
        f"{torch.get_num_threads()}"
    )
    print(f"{'what':<18}{'n':>8}{'seconds':>10}{'per second':>12}")
    for what, n, seconds, rate in rows:
        print(f"{what:<18}{n:>8}{seconds:>10.2f}{rate:>12.1f}")
    result = {
        "combo": args.combo,
        "device": device,
        "precision": args.precision,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "ism_reads": args.reads,
        "predicted_reads": n_predicted,
        "predict_seq_per_s": predict_rate,
        "ism_mutants_per_s": ism_rate,
        "ratio": ism_rate / predict_rate,
    }
    out = ROOT / "bench" / "results" / f"interpret_speed-{args.combo}-{args.device.split(':')[0]}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ISM mutants/s / predict seq/s = {ism_rate / predict_rate:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
