"""Checkpoints: resuming another combination or processing stops before anything is written; corrupt
checkpoints (truncated, random bytes inside, NaN/inf weights) are one line and exit status 2 in train,
predict and evaluate; every checkpoint carries a digest of its tensors that is checked on load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from src.checkpoint import DIGEST_KEY, read_checkpoint, tensor_digest
from src.entry import run_task
from src.errors import ConfigError
from src.evaluate_task import evaluate
from src.predict_task import predict
from src.train_task import train
from tests.helpers import FAST, ROOT, TINY_ONEHOT_RESNET, compose_cfg, train_tiny


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("integrity") / "run", TINY_ONEHOT_RESNET)


def corrupt_copies(ckpt: Path, folder: Path) -> dict[str, Path]:
    """truncated / random bytes in the middle of the file / a NaN weight (saved with a fresh digest)."""
    data = ckpt.read_bytes()
    out = {name: folder / f"{name}.ckpt" for name in ("truncated", "random-bytes", "nan-weights")}
    out["truncated"].write_bytes(data[: len(data) // 2])
    middle = len(data) // 2
    out["random-bytes"].write_bytes(data[:middle] + os.urandom(64) + data[middle + 64 :])
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    name = next(k for k, v in obj["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    obj["state_dict"][name].view(-1)[0] = float("nan")
    obj[DIGEST_KEY]["value"] = tensor_digest(obj)  # a faithfully saved but diverged model
    torch.save(obj, out["nan-weights"])
    return out


def test_every_checkpoint_carries_a_digest_of_its_tensors(ckpt: Path, tmp_path: Path) -> None:
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert obj[DIGEST_KEY] == {"algorithm": "sha256", "value": tensor_digest(obj)}
    read_checkpoint(ckpt)  # intact
    name = next(k for k, v in obj["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    obj["state_dict"][name].view(-1)[3] += 1e-3  # silent bit rot: the file still loads
    torch.save(obj, tmp_path / "rotted.ckpt")
    with pytest.raises(ConfigError, match="is corrupt: its tensors no longer match the digest"):
        read_checkpoint(tmp_path / "rotted.ckpt")


def _one_line_exit(call, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        call()
    assert exit_info.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ckpt_path: "), lines
    return lines[0]


@pytest.mark.parametrize("kind", ["truncated", "random-bytes", "nan-weights"])
def test_corrupt_checkpoint_is_one_line_in_every_entry_point(
    kind: str, ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = corrupt_copies(ckpt, tmp_path)[kind]
    expected = {"truncated": "not a readable checkpoint", "random-bytes": "corrupt", "nan-weights": "non-finite"}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = compose_cfg([*FAST, *TINY_ONEHOT_RESNET, f"ckpt_path={bad}"], run_dir=run_dir)
    assert expected[kind] in _one_line_exit(lambda: run_task(train, cfg), capsys)
    assert list(run_dir.iterdir()) == []  # no config.yaml, no csv/
    seqs = tmp_path / "seqs.txt"
    seqs.write_text("ACGT" * 27 + "AC\n")
    out = tmp_path / "pred.tsv"
    pcfg = OmegaConf.create({"ckpt_path": str(bad), "input": str(seqs), "output": str(out), "device": "cpu"})
    assert expected[kind] in _one_line_exit(lambda: run_task(predict, pcfg), capsys)
    assert not out.exists()
    ecfg = OmegaConf.create(
        {"ckpt_path": str(bad), "predictions": None, "test": str(tmp_path), "out_dir": None, "logger": None}
    )
    assert expected[kind] in _one_line_exit(lambda: run_task(evaluate, ecfg), capsys)
    assert not (tmp_path / "evaluation").exists()  # nothing written


def test_resume_of_another_processing_leaves_the_run_untouched(ckpt: Path) -> None:
    """``resume=true`` in a finished run's folder with another processing: one line naming both, byte for byte."""
    run_dir = ckpt.parent.parent
    before = snapshot(run_dir)
    other = [o for o in TINY_ONEHOT_RESNET if not o.startswith("processing=")] + ["processing=bhi"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *FAST, *other, "resume=true", f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: ckpt_path: {ckpt} is a checkpoint of resnet-resnet-resnet with processing ")
    assert "onehot, this run is resnet-resnet-resnet with processing bhi" in lines[0]
    assert snapshot(run_dir) == before


def test_ckpt_path_of_another_combination_is_one_line(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wider = [o.replace("first.block.out_channels=8", "first.block.out_channels=16") for o in TINY_ONEHOT_RESNET]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = compose_cfg([*FAST, *wider, f"ckpt_path={ckpt}"], run_dir=run_dir)
    line = _one_line_exit(lambda: run_task(train, cfg), capsys)
    assert "(first.block.out_channels is 8 in the checkpoint, 16 here)" in line
    assert list(run_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is not a readable checkpoint: the file is empty (0 bytes)"),
        (b"hello world\n", "is not a readable checkpoint: not a PyTorch checkpoint (zip or pickle header not found)"),
        (b"seq\tvalue\nACGT\t1.5\n", "not a PyTorch checkpoint (zip or pickle header not found)"),
    ],
)
def test_a_file_that_is_no_checkpoint_says_so_in_words(content: bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert expected in message and message.endswith(")"), message  # never "...: 101" (torch's bare KeyError)


def test_a_load_error_without_words_is_put_in_words() -> None:
    from src.checkpoint import _in_words

    assert _in_words(KeyError("101")) == "unreadable pickle data (KeyError '101')"
    assert _in_words(EOFError()) == "unreadable pickle data (EOFError)"
    assert _in_words(RuntimeError("Invalid magic number; corrupt file?")) == "Invalid magic number; corrupt file?"
