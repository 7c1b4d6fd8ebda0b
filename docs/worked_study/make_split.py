"""Split the DREAM sample into a training file and a held-out test folder for the worked study.

    python docs/worked_study/make_split.py ../shared/data/dream/train_sample.txt outputs/worked_study [--test 1500]

Writes ``<out>/train.txt`` (the reads the sweep trains and validates on) and
``<out>/test/filtered_test_data_with_MAUDE_expression.txt`` (``--test`` reads drawn at random with
seed 0, never seen in training), the sequence file of a DREAM test folder. The folder has no subset
CSVs, so the test-suite score is Pearson r squared over all held-out reads (flagged ``partial``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sample", type=Path, help="DREAM reads, sequence<TAB>expression per line")
    parser.add_argument("out", type=Path, help="folder to write train.txt and test/ into")
    parser.add_argument("--test", type=int, default=1500, help="number of held-out reads (default: %(default)s)")
    args = parser.parse_args()
    lines = [line for line in args.sample.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not 0 < args.test < len(lines):
        parser.error(f"--test {args.test}: must be between 1 and {len(lines) - 1} ({args.sample} has {len(lines)})")
    order = np.random.default_rng(0).permutation(len(lines))
    held_out = set(order[: args.test].tolist())
    (args.out / "test").mkdir(parents=True, exist_ok=True)
    train = [line for i, line in enumerate(lines) if i not in held_out]
    test = [lines[i] for i in sorted(held_out)]
    (args.out / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (args.out / "test" / "filtered_test_data_with_MAUDE_expression.txt").write_text("\n".join(test) + "\n")
    print(f"{len(train)} training reads -> {args.out / 'train.txt'}; {len(test)} held-out -> {args.out / 'test'}")


if __name__ == "__main__":
    main()
