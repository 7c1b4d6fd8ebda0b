"""Config mistakes on the command line: one line naming the key (with the closest valid names), exit 2, and no
folder created, in train.py, predict.py, evaluate.py, interpret.py and variant_effect.py alike; an added key that no
code reads is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.cli_check import command_line_problem
from tests.helpers import ROOT, train_cli


def app(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1, (result.returncode, result.stderr[-3000:])
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["cor=bhi"], "error: cor: no such config key or group (closest: core)"),
        (["+recipe.lrr=0.1"], "error: recipe.lrr: no code reads this key, so +recipe.lrr=0.1 would be ignored"),
        (["processing.on_long=crop"], "error: processing.on_long must be one of error, trim, drop (got 'crop')"),
    ],
)
def test_train_config_mistakes_are_one_line_exit_2_and_leave_no_folder(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    """The last one is found by the task itself (not by the pre-check): its empty run folder is removed."""
    line = one_line(train_cli([*args, "logger=none"], tmp_path))
    assert line.startswith(expected), line
    assert list(tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))


def test_a_run_folder_below_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    run_dir = tmp_path / "file" / "run"
    line = one_line(train_cli([f"hydra.run.dir={run_dir}", "logger=none"], tmp_path))
    assert line == f"error: hydra.run.dir: {tmp_path / 'file'} is a file, so the run folder {run_dir} cannot be made"


def test_predict_and_evaluate_name_a_misspelt_or_added_key(tmp_path: Path) -> None:
    line = one_line(app("predict.py", ["ckpt_path=m.ckpt", "input=x.txt", "outptu=y.tsv"], tmp_path))
    assert line == "error: outptu: no such config key or group (closest: output)"
    line = one_line(app("evaluate.py", ["test=folder", "+batch_sizee=8"], tmp_path))
    assert line.startswith("error: batch_sizee: no code reads this key, so +batch_sizee=8 would be ignored"), line
    assert list(tmp_path.iterdir()) == []


def test_interpret_and_variant_effect_name_a_misspelt_or_added_key(tmp_path: Path) -> None:
    line = one_line(app("interpret.py", ["ckpt_path=m.ckpt", "input=x.fa", "outptu=o", "method=ism"], tmp_path))
    assert line == "error: outptu: no such config key or group (closest: output)"
    line = one_line(
        app("variant_effect.py", ["ckpt_path=m.ckpt", "pairs=p.tsv", "output=e.tsv", "+batch_sizee=8"], tmp_path)
    )
    assert line.startswith("error: batch_sizee: no code reads this key, so +batch_sizee=8 would be ignored"), line
    assert list(tmp_path.iterdir()) == []
    motifs = ["ckpt_path=m", "output=o", "method=marginalize", "motif=[TATA,Reb1]", "backgrounds=5", "positions=[4]"]
    assert command_line_problem("interpret", motifs) is None
    assert command_line_problem("variant_effect", ["ckpt_path=m", "pairs=p.tsv", "output=e.tsv", "device=cpu"]) is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["recipe.lrr=0.1"], "recipe.lrr: no such config key or group (closest: recipe.lr"),
        (["core=bhii"], "core=bhii: no such core option (closest: bhi; options: autosome, bhi, camformers,"),
        (["datamodule.val_foldd=1"], "datamodule.val_foldd: no such config key or group (closest: datamodule.val_fold"),
        (["recipe.epochs=-1"], "recipe.epochs=-1 must be >= 1"),
        (["recipe.batch_size=0"], "recipe.batch_size=0 must be >= 1"),
        (["trainer=gpu"], "trainer.accelerator=gpu: no CUDA GPU is visible to torch"),
        (["trainer.precision=fp99"], "trainer.precision='fp99' is not a Lightning precision"),
        (["monitor.metric=val/foo"], "monitor.metric: 'val/foo' is not logged by this run"),
        (["+first.block.bogus=1"], "first.block.bogus: no code reads this key, so +first.block.bogus=1 would be"),
        (["-m", "recipe.lrr=0.1,0.2"], "recipe.lrr: no such config key or group (closest: recipe.lr"),
        (["-m", "first=resnet,bhii"], "first=bhii: no such first option (closest: bhi;"),
    ],
)
def test_the_pre_check_names_the_key(args: list[str], expected: str) -> None:
    pytest.importorskip("torch")
    import torch

    if args == ["trainer=gpu"] and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: trainer=gpu is valid here")
    problem = command_line_problem("train", args)
    assert problem is not None and problem.startswith(expected), problem


@pytest.mark.parametrize(
    "args",
    [
        ["first=bhi", "first.block.out_channels=8", "data.source.n=400"],
        ["+trainer.deterministic=true"],  # a keyword of lightning.Trainer (trainer._target_)
        ["+aux_weights.recon2=0.5"],  # a mapping of weights by loss name
        ["++trainer.max_steps=1", "processing=auto/dream", "data=dream", "data.path=x.txt"],
        ["experiment=dream_rnn"],
        # a multirun: values are the jobs' business (a rejected job is recorded in the ledger), names are checked
        ["-m", "first=resnet,bhi", "first.block.out_channels=0,8", "recipe.batch_size=0,16"],
        ["-m", "first=glob(*)", "core=resnet"],
        ["--help"],
    ],
)
def test_valid_command_lines_pass_the_pre_check(args: list[str]) -> None:
    assert command_line_problem("train", args) is None
