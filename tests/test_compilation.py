"""``compile``: the network under torch.compile gives the same run, with the same checkpoint keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.compilation import compile_backend
from src.errors import ConfigError
from src.train_task import build_module, train
from tests.helpers import compose_cfg, tiny_bhi_resnet, train_cli

RUN = [
    *tiny_bhi_resnet(final="autosome"),
    "data.source.n=200",
    "recipe.epochs=1",
    "recipe.batch_size=32",
    "recipe.steps_per_epoch=3",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
]


def test_compile_settings() -> None:
    assert compile_backend(False) is None and compile_backend(None) is None
    assert compile_backend(True) == "inductor" and compile_backend("eager") == "eager"
    for bad in (3, "", ["inductor"]):
        with pytest.raises(ConfigError, match="compile must be true, false or a torch.compile backend name"):
            compile_backend(bad)


def test_compiled_run_equals_the_eager_run_and_keeps_checkpoint_keys(tmp_path: Path) -> None:
    # the "eager" backend runs Dynamo's captured graphs with the original kernels: same numbers, no C++ build
    plain = train(compose_cfg(RUN, run_dir=tmp_path / "plain"))
    compiled = train(compose_cfg([*RUN, "compile=eager"], run_dir=tmp_path / "compiled"))
    for key, value in plain["metrics"].items():
        assert compiled["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    (ckpt,) = (tmp_path / "compiled" / "checkpoints").glob("last*.ckpt")
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert sorted(saved) == sorted(build_module(compose_cfg(RUN)).state_dict())  # no "_orig_mod." prefixes


def test_a_bad_compile_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="compile must be"):
        train(compose_cfg([*RUN, "compile=3"], run_dir=tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def test_compile_from_the_command_line(tmp_path: Path) -> None:
    """``python train.py ... compile=eager`` trains and says so; ``compile=3`` is one line and exit 2."""
    ok = train_cli([*RUN, "compile=eager", f"hydra.run.dir={tmp_path / 'ok'}"], tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "runs under torch.compile (backend eager)" in ok.stdout + ok.stderr
    assert (tmp_path / "ok" / "metrics.json").is_file()
    bad = train_cli([*RUN, "compile=3", f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path)
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    message = "error: compile must be true, false or a torch.compile backend name (got 3)"
    assert bad.returncode == 2 and lines == [message], lines
