"""bench/fair_recipe.py's judgements: the per-combination verdict and the grid table (no training)."""

from __future__ import annotations

import argparse

import pytest

from tests.helpers import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("fair_recipe")


def _stats(shared: list[float], fair: list[float]) -> dict:
    out = {}
    for mode, values in (("shared", shared), ("auto+retries", fair)):
        mean = sum(values) / len(values)
        sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
        out[f"x/{mode}"] = {"values": values, "mean": mean, "sd": sd, "bad": 0, "n": len(values)}
    return out


def test_verdict_is_the_difference_against_twice_its_standard_error(bench) -> None:
    # difference -0.070, standard error sqrt(0.01^2/3 + 0.01^2/3) = 0.0082: worse
    (line,) = bench.verdicts(_stats([0.56, 0.57, 0.55], [0.49, 0.50, 0.48]))
    assert line.endswith("worse") and "-0.070" in line and "2 SE 0.016" in line
    (line,) = bench.verdicts(_stats([0.40, 0.42, 0.38], [0.41, 0.39, 0.42]))
    assert line.endswith("within noise")
    (line,) = bench.verdicts(_stats([0.20, 0.21, 0.19], [0.44, 0.43, 0.45]))
    assert line.endswith("better")
    one = _stats([0.4, 0.41, 0.39], [0.3, 0.31, 0.29])
    one["x/auto+retries"]["values"] = [0.3]
    assert bench.verdicts(one)[0].endswith("not judged (fewer than 2 ok runs in a mode)")


def test_grid_table_marks_the_best_peak_and_counts_collapsed_runs_as_zero(bench) -> None:
    def run(peak: float, seed: int, r: float | None) -> dict:
        status = "ok" if r is not None else "collapsed"
        return {"combination": "a-b-c", "peak": peak, "seed": seed, "status": status, "metrics": {"val/pearson": r}}

    runs = [run(0.001, 0, 0.30), run(0.001, 1, 0.32), run(0.01, 0, 0.50), run(0.01, 1, None)]
    lines = bench.grid_table(runs, [0.001, 0.005, 0.01], argparse.Namespace(threads=2, steps=300, batch_size=32))
    assert lines[-1] == "| a-b-c | **0.310** | - | 0.250 (1c) | 0.001 |"
