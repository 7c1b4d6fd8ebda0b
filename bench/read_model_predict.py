"""Prediction through the read wrapper (:class:`ReadModel`) vs predict.py's batched path: cost of each, same model.

    python bench/read_model_predict.py                       # default combination (autosome), CPU, precision auto
    python bench/read_model_predict.py --combo dream_cnn --reads 20000

The model's forward pass is the same in both paths (the wrapper rebuilds the processing's encoding exactly);
what differs is the work around it, measured here on the same reads (synthetic, 100-110 nt):

* predict.py's path (:func:`src.inference.predict_sequences`): ``prepare_sequences`` once (uint8 fields), then
  ``make_batch`` per batch;
* the wrapper's path (:func:`src.interpret.read_model.prepare_reads` + :meth:`ReadModel.encode`): the same
  validation, one probe of the processing per distinct read length, a check of every read's mapped encoding
  against the processing's own, a float32 one-hot of every read, then a gather and an einsum per batch.

It also times the full model's forward per read (a few batches) to put the overhead in proportion, and checks
that both paths predict the same values. Prints a table, writes ``bench/results/read_model_predict-<combo>.json``;
the last line is the wrapper's end-to-end prediction time relative to predict.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.interpret_speed import COMBOS, build, cpu_name  # noqa: E402
from src.datamodules.synthetic import generate  # noqa: E402
from src.inference import predict_sequences, prepare_sequences  # noqa: E402
from src.interpret.attribution import predict_reads  # noqa: E402
from src.interpret.read_model import ReadModel, prepare_reads  # noqa: E402


def reads(n: int, seed: int = 1) -> list[str]:
    """``n`` synthetic reads cut to 100-110 nt (several lengths, as real read files have)."""
    rng = np.random.default_rng(seed)
    sequences = [s for s in generate(n + n // 4, seed=seed).sequences if len(s) >= 110][:n]
    return [s[: 100 + int(k)] for s, k in zip(sequences, rng.integers(0, 11, len(sequences)))]


def best_of(rounds: int, fn) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--combo", default="autosome", choices=sorted(COMBOS))
    parser.add_argument("--reads", type=int, default=20000, help="reads whose processing-side work is timed")
    parser.add_argument("--forward-reads", type=int, default=128, help="reads predicted by the full model")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    module = build(args.combo)
    processing = module.processing
    sequences = reads(args.reads)
    bs = args.batch_size

    def predict_side() -> None:  # predict_sequences without the model: prepare once, make_batch per batch
        prepared = prepare_sequences(processing, sequences)
        fields = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in prepared.items()}
        for start in range(0, len(sequences), bs):
            part = {k: v[start : start + bs] for k, v in fields.items()}
            n = len(next(iter(part.values())))
            processing.make_batch(part, torch.zeros(n, 1), torch.zeros(n, dtype=torch.long), False)

    def wrapper_side() -> None:  # the wrapper without the model: prepare_reads, then encode per batch
        prepared = prepare_reads(module, sequences)
        model = ReadModel(module, prepared.layouts, device="cpu")
        with torch.inference_mode():
            for start in range(0, len(sequences), bs):
                model.encode(prepared.onehot[start : start + bs], prepared.layout[start : start + bs])

    predict_s = best_of(args.rounds, predict_side)
    wrapper_s = best_of(args.rounds, wrapper_side)
    prepared_fields = prepare_sequences(processing, sequences)
    field_bytes = sum(v.nbytes for v in prepared_fields.values())
    onehot_bytes = prepare_reads(module, sequences).onehot.numel() * 4

    few = sequences[: args.forward_reads]
    kw = {"batch_size": bs, "device": "cpu", "precision": args.precision, "progress": False}
    expected = predict_sequences(module, few, **kw)  # warm-up and the reference values
    forward_s = best_of(1, lambda: predict_sequences(module, few, **kw)) / len(few)
    prepared_few = prepare_reads(module, few)
    wrapped = predict_reads(ReadModel(module, prepared_few.layouts, precision=args.precision), prepared_few, bs)
    max_diff = float(np.abs(wrapped - expected).max())

    n = len(sequences)
    predict_total = n * forward_s + predict_s
    wrapper_total = n * forward_s + wrapper_s
    result = {
        "combo": args.combo,
        "device": cpu_name(),
        "threads": torch.get_num_threads(),
        "precision": args.precision,
        "reads": n,
        "distinct_lengths": len({len(s) for s in sequences}),
        "predict_side_s": predict_s,
        "wrapper_side_s": wrapper_s,
        "prepared_fields_bytes": field_bytes,
        "wrapper_onehot_bytes": onehot_bytes,
        "forward_s_per_read": forward_s,
        "max_abs_prediction_difference": max_diff,
        "end_to_end_ratio": wrapper_total / predict_total,
    }
    print(f"combo {args.combo}, {result['device']}, {result['threads']} threads, precision {args.precision}")
    print(f"{'what':<44}{'predict.py path':>16}{'wrapper path':>14}")
    print(f"{'processing-side seconds, ' + str(n) + ' reads':<44}{predict_s:>16.2f}{wrapper_s:>14.2f}")
    print(f"{'memory held for the reads (MB)':<44}{field_bytes / 1e6:>16.1f}{onehot_bytes / 1e6:>14.1f}")
    print(f"{'model forward seconds per read (both)':<44}{forward_s:>16.5f}{forward_s:>14.5f}")
    print(f"largest prediction difference between the paths: {max_diff:.2e}")
    out = ROOT / "bench" / "results" / f"read_model_predict-{args.combo}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"wrapper end-to-end / predict.py end-to-end = {result['end_to_end_ratio']:.3f} "
        f"(processing side alone {wrapper_s / predict_s:.1f}x)"
    )


if __name__ == "__main__":
    main()
