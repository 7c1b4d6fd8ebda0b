"""Effects of a sweep: recovered from a synthetic ledger with known main effects, one interaction and noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from src.sweep.effects import bootstrap_suite_difference, compute_effects
from src.sweep.effects_report import effects_markdown, write_effects
from src.sweep.ledger import append_record, make_record

MU = 0.60
FIRST = {"autosome": 0.05, "bhi": 0.0, "unlockdna": -0.05}
CORE = {"autosome": 0.03, "bhi": -0.03}
FINAL = {"autosome": 0.0, "bhi": 0.0}
AUX = {"0": -0.02, "0.5": 0.0, "1": 0.02}
# first x core interaction: every row and column sums to zero, so it leaves the marginal means alone
INTERACTION = {("autosome", "autosome"): 0.02, ("autosome", "bhi"): -0.02, ("bhi", "autosome"): -0.02}
INTERACTION |= {("bhi", "bhi"): 0.02}
SEEDS = {0: 0.004, 1: -0.002, 2: -0.002}
NOISE = 0.002


def _truth(first: str, core: str, final: str, aux: str) -> float:
    return MU + FIRST[first] + CORE[core] + FINAL[final] + AUX[aux] + INTERACTION.get((first, core), 0.0)


def synthetic_records(seeds=SEEDS, noise: float = NOISE, rng_seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(rng_seed)
    records = []
    for first, core, final, aux, seed in itertools.product(FIRST, CORE, FINAL, AUX, seeds):
        y = _truth(first, core, final, aux) + seeds[seed] + rng.normal(0.0, noise)
        overrides = {"first": first, "core": core, "final": final, "aux_weights.recon": float(aux), "seed": seed}
        records.append(make_record(overrides=overrides, status="ok", metrics={"val/pearson": y}))
    # a failed job never enters the effects
    failed = {"first": "bhi", "core": "resnet", "final": "bhi", "aux_weights.recon": 0.0, "seed": 0}
    records.append(make_record(overrides=failed, status="failed", error="boom"))
    return records


def _true_sum_sq(effects: dict, n_total: int) -> float:
    per_level = n_total / len(effects)
    return per_level * sum(v * v for v in effects.values())


def test_marginal_means_recover_main_effects_within_their_intervals():
    effects = compute_effects(synthetic_records(), "val/pearson")
    assert effects.factors == ["first", "core", "final", "aux_weights.recon"]  # the swept axes, roles first
    table = effects.marginal.set_index(["factor", "level"])
    for factor, truth in (("first", FIRST), ("core", CORE)):
        for level, effect in truth.items():
            row = table.loc[(factor, level)]
            assert row["mean"] == pytest.approx(MU + effect, abs=0.003)
            assert row["ci_low"] < MU + effect < row["ci_high"]
    for level, effect in AUX.items():
        row = table.loc[("aux_weights.recon", str(float(level)))]
        assert row["mean"] == pytest.approx(MU + effect, abs=0.003)
        assert row["n"] == 3 * 2 * 2 * 3 and row["n_seeds"] == 3


def test_variance_shares_recover_the_known_decomposition():
    records = synthetic_records()
    effects = compute_effects(records, "val/pearson")
    n = len(records) - 1
    ys = np.array([r["metrics"]["val/pearson"] for r in records[:-1]])
    total = float(((ys - ys.mean()) ** 2).sum())
    shares = effects.decomposition.table.set_index("term")["share"]
    expected = {
        "first": _true_sum_sq(FIRST, n) / total,
        "core": _true_sum_sq(CORE, n) / total,
        "aux_weights.recon": _true_sum_sq(AUX, n) / total,
        "first x core": (n / 6) * sum(v * v for v in INTERACTION.values()) / total,
        "seed": _true_sum_sq(SEEDS, n) / total,
    }
    for term, share in expected.items():
        assert shares[term] == pytest.approx(share, abs=0.01), term
    for term in ("final", "first x final", "first x aux_weights.recon", "core x aux_weights.recon"):
        assert shares[term] < 0.01
    assert shares.sum() == pytest.approx(1.0, abs=1e-9)  # a balanced grid: the shares add up


def test_paired_comparison_intervals_cover_the_true_differences():
    effects = compute_effects(synthetic_records(), "val/pearson", top=4)
    paired = effects.paired
    best = paired.iloc[0]
    assert (best["first"], best["core"], best["aux_weights.recon"]) == ("autosome", "autosome", "1.0")
    assert best["note"] == "best"
    truth_best = _truth("autosome", "autosome", best["final"], "1")
    for row in paired.iloc[1:].to_dict("records"):
        aux = {"0.0": "0", "0.5": "0.5", "1.0": "1"}[row["aux_weights.recon"]]
        truth = _truth(row["first"], row["core"], row["final"], aux) - truth_best
        assert row["ci_low"] <= truth <= row["ci_high"], row
        assert row["diff"] == pytest.approx(truth, abs=4 * NOISE)
        assert row["ci_high"] - row["ci_low"] < 0.05


def test_single_seed_reports_no_seed_interval():
    effects = compute_effects(synthetic_records(seeds={0: 0.0}), "val/pearson")
    paired = effects.paired.iloc[1:]
    assert paired["ci_low"].isna().all() and paired["ci_high"].isna().all()
    assert all("no seed interval" in note for note in paired["note"])
    text = effects_markdown(effects)
    assert "one seed per configuration" in text
    assert "seed" not in set(effects.decomposition.table["term"])
    assert any("one seed" in note for note in effects.decomposition.notes)


def test_effects_files_name_the_aux_axis(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    for record in synthetic_records():
        append_record(ledger, record)
    from src.sweep.ledger import read_ledger

    effects = compute_effects(read_ledger(ledger), "val/pearson")
    paths = write_effects(tmp_path, effects, "synthetic")
    assert [p.name for p in paths] == ["effects.md", "effects.csv", "effects.png"]
    text = (tmp_path / "effects.md").read_text()
    assert "| aux_weights.recon | 0.5 |" in text
    assert "aux_weights.recon" in (tmp_path / "effects.csv").read_text()


def test_saturated_sweep_drops_interactions_and_says_so():
    records = [r for r in synthetic_records(seeds={0: 0.0}) if r["overrides"].get("aux_weights.recon") == 0.0]
    records = [r for r in records if r["overrides"]["final"] == "autosome"]  # 3 x 2, one job each
    effects = compute_effects(records, "val/pearson")
    assert effects.factors == ["first", "core"]
    assert any("left out first x core" in note for note in effects.decomposition.notes)
    assert set(effects.decomposition.table["term"]) == {"first", "core", "residual"}


class _Suite:
    """The attributes of a DREAM TestSuite that the scoring reads: every position in the 'all' subset."""

    def __init__(self, measured: np.ndarray) -> None:
        self.measured = measured
        self.sequences = ["A"] * len(measured)
        self.singles: dict = {}
        self.pairs: dict = {}
        self.missing: list = []


def test_bootstrap_over_sequences_separates_a_better_model():
    rng = np.random.default_rng(1)
    measured = rng.normal(size=400)
    good = [measured + rng.normal(0, 0.5, 400) for _ in range(2)]
    bad = [measured + rng.normal(0, 1.5, 400) for _ in range(2)]
    diff, low, high = bootstrap_suite_difference(_Suite(measured), good, bad, n_boot=300)
    assert diff < 0 and low < diff < high < 0
    same, low, high = bootstrap_suite_difference(_Suite(measured), good, good, n_boot=50)
    assert same == 0.0 and low == pytest.approx(0.0) and high == pytest.approx(0.0)


def test_unbalanced_grid_shows_estimated_marginal_means_not_raw_means(tmp_path):
    """The weak core never finished behind the strong stem: its raw mean flatters the stem; the model's does not."""
    firsts, cores = {"strong": 0.10, "plain": 0.0}, {"good": 0.20, "mid": 0.10, "weak": 0.0}
    rng = np.random.default_rng(3)
    records = []
    for (first, a), (core, b), seed in itertools.product(firsts.items(), cores.items(), range(3)):
        overrides = {"first": first, "core": core, "final": "bhi", "seed": seed}
        if (first, core) == ("strong", "weak"):  # this cell failed: the grid is unbalanced
            records.append(make_record(overrides=overrides, status="failed", error="out of memory"))
            continue
        y = 0.5 + a + b + rng.normal(0.0, 0.002)
        records.append(make_record(overrides=overrides, status="ok", metrics={"val/pearson": y}))
    effects = compute_effects(records, "val/pearson")
    assert effects.marginal_kind == "estimated"
    table = effects.marginal.set_index(["factor", "level"])
    for factor, truth in (("first", firsts), ("core", cores)):
        for level, effect in truth.items():  # the additive model over the full grid recovers the truth
            expected = 0.5 + effect + np.mean(list((cores if factor == "first" else firsts).values()))
            row = table.loc[(factor, level)]
            assert row["mean"] == pytest.approx(expected, abs=0.005)
            assert row["ci_low"] < expected < row["ci_high"]
    strong = table.loc[("first", "strong")]
    assert strong["raw_mean"] - strong["mean"] > 0.04  # the raw mean (0.65) favours the stem whose weak partner failed
    text = effects_markdown(effects)
    assert "**Estimated marginal means** (the sweep is not a full balanced grid: only 5 of its 6 combinations" in text
    assert "| factor | level | estimated mean |" in text
    assert "raw mean" in text
    # the same sweep, balanced: raw level means, and the report says so
    balanced = [r for r in records if r["status"] == "ok" and r["combination"]["core"] != "weak"]
    effects = compute_effects(balanced, "val/pearson")
    assert effects.marginal_kind == "raw" and "Raw means" in effects_markdown(effects)
