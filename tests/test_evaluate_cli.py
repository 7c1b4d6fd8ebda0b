"""evaluate_module / evaluate.py: report files, predictions given directly, errors, CLI, offline W&B."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from src.checkpoint import load_module
from src.errors import ConfigError, DataError
from src.evaluate_task import default_out_dir, evaluate
from src.evaluation import SUBSET_WEIGHTS, load_test_suite, score_predictions
from src.evaluation.evaluate_model import evaluate_module
from src.evaluation.prediction_file import read_prediction_file
from tests.helpers import ROOT, TINY_ONEHOT_RESNET, shared_file, train_tiny


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("eval") / "run", TINY_ONEHOT_RESNET)


@pytest.fixture
def test_dir(tmp_path: Path) -> Path:
    src = shared_file("dream_test_format")
    dst = tmp_path / "dream_test"
    shutil.copytree(src, dst)
    return dst


def _cfg(**values: object) -> DictConfig:
    base = {"ckpt_path": None, "predictions": None, "test_sequences": None, "out_dir": None, "rc_average": None}
    return OmegaConf.create(base | {"device": "cpu", "progress": False, "logger": None} | values)


def test_evaluate_module_writes_the_report(ckpt: Path, test_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    scores = evaluate_module(load_module(ckpt), test_dir, out, device="cpu")
    saved = json.loads((out / "scores.json").read_text())
    assert {"pearson_score", "spearman_score", "partial", "subsets"} <= saved.keys()
    assert saved["pearson_score"] == pytest.approx(scores["pearson_score"])
    assert set(saved["subsets"]) == set(SUBSET_WEIGHTS)
    for row in saved["subsets"].values():
        assert {"r", "rho", "n"} <= row.keys()
    assert (out / "scores.md").read_text().count("|") > 20
    assert sorted(p.name for p in out.glob("scatter_*.png")) == sorted(f"scatter_{n}.png" for n in SUBSET_WEIGHTS)
    suite = load_test_suite(test_dir)
    rows = (out / "predictions.tsv").read_text().splitlines()
    assert rows[0] == "sequence\tprediction" and [r.split("\t")[0] for r in rows[1:]] == suite.sequences

    # the predict.py TSV scored directly gives exactly the same scores
    direct = evaluate(_cfg(predictions=str(out / "predictions.tsv"), test=str(test_dir), out_dir=str(tmp_path / "d")))
    assert direct == scores


def test_predictions_given_directly(test_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = load_test_suite(test_dir)
    numbers = np.random.default_rng(0).normal(size=len(suite))
    column = tmp_path / "numbers.txt"
    column.write_text("".join(f"{float(v)!r}\n" for v in numbers))
    out = tmp_path / "ev"
    scores = evaluate(_cfg(predictions=str(column), test=str(test_dir), out_dir=str(out)))
    expected = score_predictions(suite, numbers)
    assert scores == expected
    assert json.loads((out / "scores.json").read_text())["spearman_score"] == pytest.approx(expected["spearman_score"])
    assert "Pearson score" in capsys.readouterr().out
    # sequence<TAB>value without a header works too
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{s}\t{float(v)!r}\n" for s, v in zip(suite.sequences, numbers)))
    np.testing.assert_array_equal(read_prediction_file(pairs, suite), numbers)


def test_prediction_file_errors(test_dir: Path, tmp_path: Path) -> None:
    suite = load_test_suite(test_dir)
    n = len(suite)
    path = tmp_path / "p.txt"
    path.write_text("1.0\n" * (n - 1))
    with pytest.raises(DataError, match=f"{n - 1} predictions for {n}"):
        read_prediction_file(path, suite)
    path.write_text("1.0\n2.0\nabc\n" + "1.0\n" * (n - 3))
    with pytest.raises(DataError, match=r"p\.txt:3: prediction 'abc'"):
        read_prediction_file(path, suite)
    rows = ["sequence\tprediction"] + [f"{s}\t1.0" for s in suite.sequences]
    rows[2] = "ACGT\t1.0"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"p\.txt:3: sequence differs from test sequence file line 2"):
        read_prediction_file(path, suite)
    path.write_text("sequence\tprediction_a\tprediction_b\nACGT\t1\t2\n")
    with pytest.raises(DataError, match="2 prediction columns"):
        read_prediction_file(path, suite)


def test_config_errors_and_default_out_dir(ckpt: Path, test_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        evaluate(_cfg(test=str(test_dir)))
    with pytest.raises(ConfigError, match="both"):
        evaluate(_cfg(ckpt_path=str(ckpt), predictions="x.tsv", test=str(test_dir)))
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate(_cfg(ckpt_path=str(tmp_path / "no.ckpt"), test=str(test_dir)))
    with pytest.raises(DataError, match="test folder does not exist"):
        evaluate(_cfg(ckpt_path=str(ckpt), test=str(tmp_path / "nowhere")))
    assert default_out_dir(ckpt) == ckpt.resolve().parent.parent / "evaluation"
    assert default_out_dir(tmp_path / "model.ckpt") == tmp_path.resolve() / "evaluation"
    assert default_out_dir(None) == Path("evaluation")


def test_wandb_logging_offline(test_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    suite = load_test_suite(test_dir)
    column = tmp_path / "numbers.txt"
    column.write_text("".join(f"{v}\n" for v in np.linspace(0, 1, len(suite)) ** 2))
    out = tmp_path / "ev"
    wandb_cfg = {"wandb": {"project": "prixfixe-test", "mode": "offline"}}
    evaluate(_cfg(predictions=str(column), test=str(test_dir), out_dir=str(out), logger=wandb_cfg))
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    import wandb

    assert wandb.run is None  # finished


def test_evaluate_cli(ckpt: Path, test_dir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "evaluate.py"),
            f"ckpt_path={ckpt}",
            f"test={test_dir}",
            "device=cpu",
            "progress=false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Pearson score" in proc.stdout and "| SNVs" in proc.stdout
    report = ckpt.parent.parent / "evaluation"  # default: the checkpoint's run folder
    assert (report / "scores.json").exists() and (report / "scores.md").exists()
    assert json.loads((report / "scores.json").read_text())["n_sequences"] == len(load_test_suite(test_dir))
