"""DREAM test-suite loading, scoring (checked against scipy) and report writing."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from src.errors import DataError
from src.evaluation import (
    PAIR_SUBSETS,
    SEQUENCE_FILE,
    SINGLE_SUBSETS,
    SUBSET_FILES,
    SUBSET_WEIGHTS,
    format_table,
    load_test_suite,
    pearson,
    rank_average,
    score_predictions,
    spearman,
    write_report,
)
from src.evaluation.report import scatter_title

REAL_FORMAT = Path("/work/shared/data/dream_test_format")
N_SEQ = 300
# subsets written with the extra pandas 'Unnamed: 0' column, as some challenge files are
WITH_UNNAMED = {"random", "yeast", "motif_perturbation"}


def _random_seq(rng: np.random.Generator, length: int = 110) -> str:
    return "".join(rng.choice(list("ACGT"), size=length))


def _write_single(path: Path, positions: list[int], seqs: list[str], unnamed: bool) -> None:
    """Write a single-subset CSV in the challenge layout (index column[, Unnamed: 0], tag, sequence, pos, exp)."""
    with open(path, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["", *(["Unnamed: 0"] if unnamed else []), "tag", "sequence", "pos", "exp"])
        for i, pos in enumerate(positions):
            w.writerow([i, *([i + 7] if unnamed else []), f"tag_{pos}", seqs[pos], pos, ""])


def _write_pairs(path: Path, pairs: list[tuple[int, int]], seqs: list[str], unnamed: bool) -> None:
    """Write a pair-subset CSV in the challenge layout."""
    with open(path, "w", newline="") as handle:
        w = csv.writer(handle)
        head = ["alt_tag", "ref_tag", "alt_sequence", "ref_sequence", "alt_pos", "ref_pos", "alt_exp", "ref_exp"]
        w.writerow(["", *(["Unnamed: 0"] if unnamed else []), *head])
        for i, (alt, ref) in enumerate(pairs):
            w.writerow(
                [i, *([i] if unnamed else []), f"alt_{alt}", f"ref_{ref}", seqs[alt], seqs[ref], alt, ref, "", ""]
            )


def make_folder(root: Path, seed: int = 0) -> tuple[Path, dict[str, list[int]], dict[str, list[tuple[int, int]]]]:
    """Build a synthetic challenge-format test folder; returns it with the (repeated) rows written."""
    rng = np.random.default_rng(seed)
    folder = root / "test"
    folder.mkdir()
    seqs = [_random_seq(rng) for _ in range(N_SEQ)]
    # rounded measured values create ties, exercising average ranks
    measured = np.round(rng.normal(size=N_SEQ), 1)
    with open(folder / SEQUENCE_FILE, "w") as handle:
        for s, v in zip(seqs, measured):
            handle.write(f"{s}\t{v}\n")
    singles: dict[str, list[int]] = {}
    for name in SINGLE_SUBSETS:
        pos = rng.choice(N_SEQ, size=40, replace=False).tolist()
        pos += pos[:5]  # repeated positions
        rng.shuffle(pos)
        singles[name] = pos
        _write_single(folder / SUBSET_FILES[name], pos, seqs, name in WITH_UNNAMED)
    pairs: dict[str, list[tuple[int, int]]] = {}
    for name in PAIR_SUBSETS:
        alt = rng.choice(N_SEQ, size=30, replace=False)
        ref = rng.choice(N_SEQ, size=30, replace=True)  # shared references, as in the challenge
        rows = list(zip(alt.tolist(), ref.tolist()))
        rows += rows[:4]  # repeated pairs
        pairs[name] = rows
        _write_pairs(folder / SUBSET_FILES[name], rows, seqs, name in WITH_UNNAMED)
    return folder, singles, pairs


def _expected(folder: Path, singles: dict, pairs: dict, pred: np.ndarray) -> dict[str, tuple[float, float, int]]:
    """Direct scipy computation per subset: (r, rho, n)."""
    meas = np.array([float(line.split("\t")[1]) for line in (folder / SEQUENCE_FILE).read_text().splitlines()])
    out = {"all": (stats.pearsonr(pred, meas)[0], stats.spearmanr(pred, meas)[0], N_SEQ)}
    for name, pos in singles.items():
        u = sorted(set(pos))
        out[name] = (stats.pearsonr(pred[u], meas[u])[0], stats.spearmanr(pred[u], meas[u])[0], len(u))
    for name, rows in pairs.items():
        u = sorted(set(rows))
        a = np.array([p[0] for p in u])
        r = np.array([p[1] for p in u])
        dp, dm = pred[a] - pred[r], meas[a] - meas[r]
        out[name] = (stats.pearsonr(dp, dm)[0], stats.spearmanr(dp, dm)[0], len(u))
    return out


@pytest.fixture
def synthetic(tmp_path: Path):
    folder, singles, pairs = make_folder(tmp_path)
    rng = np.random.default_rng(1)
    suite = load_test_suite(folder)
    pred = suite.measured + rng.normal(scale=1.0, size=N_SEQ)
    pred[::7] = np.round(pred[::7], 1)  # a few ties among predictions too
    return folder, singles, pairs, suite, pred


# ----------------------------------------------------------------------------- correlations


def test_rank_average_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=200).astype(float)
    np.testing.assert_allclose(rank_average(x), stats.rankdata(x), rtol=0, atol=0)
    y = rng.normal(size=50)
    np.testing.assert_array_equal(rank_average(y), stats.rankdata(y))


def test_correlations_match_scipy_and_undefined_cases() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=100), rng.integers(0, 4, size=100).astype(float)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert math.isnan(pearson([1.0], [2.0])) and math.isnan(spearman([1.0], [2.0]))
    assert math.isnan(pearson(np.full(5, 0.1), x[:5])) and math.isnan(spearman(np.full(5, 0.1), x[:5]))


# ----------------------------------------------------------------------------- scoring


def test_synthetic_scores_match_scipy(synthetic) -> None:
    folder, singles, pairs, suite, pred = synthetic
    assert suite.missing == []
    for name, pos in singles.items():
        np.testing.assert_array_equal(suite.singles[name], sorted(set(pos)))
    for name, rows in pairs.items():
        np.testing.assert_array_equal(suite.pairs[name], np.array(sorted(set(rows))))

    scores = score_predictions(suite, pred)
    expected = _expected(folder, singles, pairs, pred)
    assert list(scores["subsets"]) == list(SUBSET_WEIGHTS)
    for name, (r, rho, n) in expected.items():
        row = scores["subsets"][name]
        assert row["n"] == n
        assert row["r"] == pytest.approx(r, abs=1e-9)
        assert row["rho"] == pytest.approx(rho, abs=1e-9)
        assert row["weight"] == SUBSET_WEIGHTS[name]
        assert row["kind"] == ("all" if name == "all" else "pair" if name in PAIR_SUBSETS else "single")
    total = sum(SUBSET_WEIGHTS.values())
    assert total == pytest.approx(4.65)
    p = sum(SUBSET_WEIGHTS[k] * v[0] ** 2 for k, v in expected.items()) / total
    s = sum(SUBSET_WEIGHTS[k] * v[1] for k, v in expected.items()) / total
    assert scores["pearson_score"] == pytest.approx(p, abs=1e-9)
    assert scores["spearman_score"] == pytest.approx(s, abs=1e-9)
    assert scores["partial"] is False and scores["missing"] == []
    assert scores["weight_sum"] == pytest.approx(4.65)
    json.dumps(scores, allow_nan=False)  # JSON-serialisable as is


def test_missing_subset_renormalises(tmp_path: Path) -> None:
    folder, singles, pairs = make_folder(tmp_path, seed=5)
    (folder / SUBSET_FILES["motif_tiling"]).unlink()
    (folder / SUBSET_FILES["yeast"]).unlink()
    suite = load_test_suite(folder)
    assert sorted(suite.missing) == ["motif_tiling", "yeast"]
    pred = suite.measured + np.random.default_rng(6).normal(size=N_SEQ)
    scores = score_predictions(suite, pred)
    del singles["yeast"], pairs["motif_tiling"]
    expected = _expected(folder, singles, pairs, pred)
    assert set(scores["subsets"]) == set(expected)
    assert scores["partial"] is True
    assert sorted(scores["missing"]) == ["motif_tiling", "yeast"]
    assert scores["weight_sum"] == pytest.approx(4.65 - 0.4 - 0.3)
    p = sum(SUBSET_WEIGHTS[k] * v[0] ** 2 for k, v in expected.items()) / 3.95
    s = sum(SUBSET_WEIGHTS[k] * v[1] for k, v in expected.items()) / 3.95
    assert scores["pearson_score"] == pytest.approx(p, abs=1e-9)
    assert scores["spearman_score"] == pytest.approx(s, abs=1e-9)


def test_undefined_subset_is_reported_and_excluded(tmp_path: Path) -> None:
    folder, singles, pairs = make_folder(tmp_path, seed=7)
    seqs = [line.split("\t")[0] for line in (folder / SEQUENCE_FILE).read_text().splitlines()]
    _write_single(folder / SUBSET_FILES["challenging"], [3, 3], seqs, unnamed=False)  # one unique position
    suite = load_test_suite(folder)
    pred = suite.measured + np.random.default_rng(8).normal(size=N_SEQ)
    scores = score_predictions(suite, pred)
    row = scores["subsets"]["challenging"]
    assert row == {
        "r": None,
        "rho": None,
        "n": 1,
        "weight": 0.5,
        "kind": "single",
        "scored": False,
        "reason": "1 sequences, a correlation needs at least 3",
    }
    assert scores["partial"] is True and scores["missing"] == [] and scores["not_scored"] == ["challenging"]
    assert scores["weight_sum"] == pytest.approx(4.15)
    del singles["challenging"]
    expected = _expected(folder, singles, pairs, pred)
    p = sum(SUBSET_WEIGHTS[k] * v[0] ** 2 for k, v in expected.items()) / 4.15
    assert scores["pearson_score"] == pytest.approx(p, abs=1e-9)
    assert "not scored" in format_table(scores)


def test_two_item_subsets_and_constant_predictions_are_not_scored(tmp_path: Path, caplog) -> None:
    folder, singles, pairs = make_folder(tmp_path, seed=13)
    seqs = [line.split("\t")[0] for line in (folder / SEQUENCE_FILE).read_text().splitlines()]
    _write_single(folder / SUBSET_FILES["yeast"], [4, 9], seqs, unnamed=False)  # 2 sequences: r would be +-1
    _write_pairs(folder / SUBSET_FILES["SNVs"], [(1, 2), (5, 6)], seqs, unnamed=False)  # 2 pairs
    suite = load_test_suite(folder)
    pred = suite.measured + np.random.default_rng(14).normal(size=N_SEQ)
    pred[suite.singles["high"]] = 0.25  # a constant prediction on one subset
    with caplog.at_level("WARNING", logger="src.evaluation.dream_suite"):
        scores = score_predictions(suite, pred)
    assert scores["not_scored"] == ["high", "yeast", "SNVs"]
    rows = scores["subsets"]
    assert rows["yeast"]["reason"] == "2 sequences, a correlation needs at least 3"
    assert rows["SNVs"]["reason"] == "2 pairs, a correlation needs at least 3"
    assert rows["high"]["reason"] == "constant prediction"
    assert all(rows[k]["r"] is None and rows[k]["rho"] is None and not rows[k]["scored"] for k in scores["not_scored"])
    warned = [r.getMessage() for r in caplog.records]
    assert any("yeast not scored: 2 sequences" in m for m in warned) and any("SNVs not scored" in m for m in warned)
    # the scores are weighted over the subsets that were scored, and say which weight they used
    weight = 4.65 - 0.3 - 0.3 - 1.25
    assert scores["weight_sum"] == pytest.approx(weight) and scores["partial"] is True
    for name in ("high", "yeast"):
        del singles[name]
    del pairs["SNVs"]
    expected = _expected(folder, singles, pairs, pred)
    assert set(expected) == {k for k, row in rows.items() if row["scored"]}
    p = sum(SUBSET_WEIGHTS[k] * v[0] ** 2 for k, v in expected.items()) / weight
    s = sum(SUBSET_WEIGHTS[k] * v[1] for k, v in expected.items()) / weight
    assert scores["pearson_score"] == pytest.approx(p, abs=1e-9)
    assert scores["spearman_score"] == pytest.approx(s, abs=1e-9)
    md = format_table(scores)
    assert f"weight {weight:g} of 4.65" in md
    assert "| yeast | 0.3 | 2 | not scored: 2 sequences, a correlation needs at least 3 |" in md
    assert scatter_title("SNVs", 2, rows["SNVs"]) == "SNVs (n=2)\nnot scored: 2 pairs, a correlation needs at least 3"
    assert "r=" not in scatter_title("yeast", 2, rows["yeast"])


def test_prediction_length_and_values_checked(synthetic) -> None:
    *_, suite, pred = synthetic
    with pytest.raises(ValueError, match="299 predictions for 300"):
        score_predictions(suite, pred[:-1])
    bad = pred.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        score_predictions(suite, bad)
    # (n, 1) column predictions are accepted
    assert score_predictions(suite, pred[:, None])["pearson_score"] == score_predictions(suite, pred)["pearson_score"]


def test_sequences_override(tmp_path: Path) -> None:
    folder, *_ = make_folder(tmp_path, seed=9)
    (folder / SEQUENCE_FILE).rename(folder / "other.txt")
    with pytest.raises(DataError, match="sequence file not found"):
        load_test_suite(folder)
    assert len(load_test_suite(folder, sequences="other.txt")) == N_SEQ


# ----------------------------------------------------------------------------- real format


def test_real_format_folder() -> None:
    if not REAL_FORMAT.is_dir():
        pytest.skip(f"real-format sample folder {REAL_FORMAT} is absent")
    suite = load_test_suite(REAL_FORMAT)
    assert len(suite.sequences) == 24 and suite.measured.shape == (24,)
    assert suite.missing == []
    counts = {k: len(v) for k, v in suite.singles.items()}
    assert counts == {"high": 3, "low": 3, "yeast": 3, "random": 4, "challenging": 3}
    np.testing.assert_array_equal(suite.singles["yeast"], [6, 7, 8])  # pos 6 repeats
    assert {k: v.shape for k, v in suite.pairs.items()} == {k: (2, 2) for k in PAIR_SUBSETS}
    np.testing.assert_array_equal(suite.pairs["SNVs"], [[13, 12], [15, 14]])
    pred = np.random.default_rng(0).normal(size=24)
    scores = score_predictions(suite, pred)
    assert set(scores["subsets"]) == set(SUBSET_WEIGHTS)
    assert scores["subsets"]["all"]["r"] == pytest.approx(stats.pearsonr(pred, suite.measured)[0], abs=1e-9)
    assert 0.0 <= scores["pearson_score"] <= 1.0 and -1.0 <= scores["spearman_score"] <= 1.0
    # its pair subsets hold 2 pairs each: not scored, whatever the predictions (two points give r = +-1)
    assert scores["not_scored"] == list(PAIR_SUBSETS)
    assert scores["weight_sum"] == pytest.approx(4.65 - sum(SUBSET_WEIGHTS[k] for k in PAIR_SUBSETS))
    assert "r=1.000" not in scatter_title("SNVs", 2, scores["subsets"]["SNVs"])


# ----------------------------------------------------------------------------- errors


def test_missing_folder_and_sequence_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as err:
        load_test_suite(tmp_path / "nope")
    assert "nope" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=SEQUENCE_FILE):
        load_test_suite(tmp_path / "empty")


def test_missing_column(tmp_path: Path) -> None:
    folder, *_ = make_folder(tmp_path)
    path = folder / SUBSET_FILES["SNVs"]
    path.write_text(path.read_text().replace("ref_pos", "reference_pos", 1))
    with pytest.raises(DataError, match="missing required column 'ref_pos'") as err:
        load_test_suite(folder)
    assert err.value.path == str(path) and err.value.line == 1
    assert str(err.value).startswith(f"{path}:1: ")


def test_pos_out_of_range_and_not_integer(tmp_path: Path) -> None:
    folder, *_ = make_folder(tmp_path)
    seqs = [line.split("\t")[0] for line in (folder / SEQUENCE_FILE).read_text().splitlines()]
    path = folder / SUBSET_FILES["high"]
    _write_single(path, [0, 1, N_SEQ], seqs + ["A"], unnamed=True)
    with pytest.raises(DataError, match=r"position 300 outside") as err:
        load_test_suite(folder)
    assert err.value.path == str(path) and err.value.line == 4
    assert f"{path.name}:4:" in str(err.value)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(f",{N_SEQ},", ",2.5,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="not an integer position") as err:
        load_test_suite(folder)
    assert err.value.line == 4


def test_bad_measured_expression(tmp_path: Path) -> None:
    folder, *_ = make_folder(tmp_path)
    path = folder / SEQUENCE_FILE
    lines = path.read_text().splitlines()
    lines[41] = lines[41].split("\t")[0] + "\tnan"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"measured expression is nan \(must be finite\)") as err:
        load_test_suite(folder)
    assert err.value.path == str(path) and err.value.line == 42


def test_sequence_mismatch_warns(tmp_path: Path) -> None:
    folder, *_ = make_folder(tmp_path)
    path = folder / SUBSET_FILES["low"]
    rows = list(csv.reader(path.read_text().splitlines()))
    rows[1][2] = "ACGT"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.warns(UserWarning, match="differs from sequence file"):
        load_test_suite(folder)


# ----------------------------------------------------------------------------- report


def test_write_report(tmp_path: Path, synthetic) -> None:
    *_, suite, pred = synthetic
    scores = score_predictions(suite, pred)
    out = tmp_path / "report"
    files = write_report(scores, suite, pred, out)
    expected_names = {"scores.json", "scores.md", *(f"scatter_{k}.png" for k in SUBSET_WEIGHTS)}
    assert set(files) == expected_names
    assert {p.name for p in out.iterdir()} == expected_names  # no temp files left behind
    assert json.loads(files["scores.json"].read_text()) == scores
    md = files["scores.md"].read_text()
    assert "| subset | weight | n | Pearson r | r² | Spearman rho |" in md
    assert f"{scores['pearson_score']:.4f}" in md and "Partial" not in md
    for name in SUBSET_WEIGHTS:
        data = files[f"scatter_{name}.png"].read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_report_marks_partial(tmp_path: Path) -> None:
    folder, *_ = make_folder(tmp_path, seed=11)
    (folder / SUBSET_FILES["SNVs"]).unlink()
    suite = load_test_suite(folder)
    pred = suite.measured + np.random.default_rng(12).normal(size=N_SEQ)
    scores = score_predictions(suite, pred)
    files = write_report(scores, suite, pred, tmp_path / "out")
    assert "scatter_SNVs.png" not in files
    md = files["scores.md"].read_text()
    assert "Partial score" in md and "SNVs" in md and "3.4 of 4.65" in md
