"""``--help`` of train.py, predict.py, evaluate.py, interpret.py and variant_effect.py: the tool, its own keys,
examples; no unrelated groups."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.helpers import CONF_DIR, ROOT

TRAINING_GROUPS = ("first", "core", "final", "recipe", "trainer", "processing", "experiment", "data")


def help_text(app: str, *overrides: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / f"{app}.py"), *overrides, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def own_keys(app: str) -> list[str]:
    """The top-level keys of ``conf/<app>.yaml`` (its own settings, not Hydra's)."""
    cfg = OmegaConf.load(CONF_DIR / f"{app}.yaml")
    return [key for key in cfg if key not in ("defaults", "hydra")]


def described(text: str, key: str) -> bool:
    """Whether ``key`` starts a line of the help's key list (followed by its description)."""
    return any(line.split()[:1] == [key] and len(line.split()) > 1 for line in text.splitlines())


@pytest.mark.parametrize("app", ["predict", "evaluate"])
def test_predict_and_evaluate_help_name_their_own_keys_only(app: str) -> None:
    text = help_text(app)
    assert text.startswith(f"{app}.py: ")  # what the tool does, first
    assert "== Examples ==" in text and f"python {app}.py ckpt_path=" in text
    keys = own_keys(app) + (["logger"] if app == "evaluate" else [])
    assert "orientation" in keys if app == "predict" else "test" in keys
    missing = [key for key in keys if not described(text, key)]
    assert not missing, f"{app}.py --help does not describe {missing}"
    # the defaults, as composed (with the overrides given)
    assert "batch_size: 512" in text and "device: auto" in text
    assert "batch_size: 64" in help_text(app, "batch_size=64")
    # training groups do nothing here: not listed
    listed = [group for group in TRAINING_GROUPS if any(line.startswith(f"{group}: ") for line in text.splitlines())]
    assert not listed, f"{app}.py --help lists training groups {listed}"


def test_train_help_names_groups_keys_and_examples() -> None:
    text = help_text("train", "recipe.epochs=7")
    assert text.startswith("train.py: ")
    assert "python train.py -m first='glob(*)'" in text
    for group in ("first", "core", "final", "data", "recipe", "trainer", "logger"):
        assert any(line.startswith(f"{group}: ") for line in text.splitlines()), group
    assert "first=autosome core=autosome final=autosome" in text  # the defaults chosen now
    for key in ("seed", "recipe.epochs", "data.path", "monitor.metric", "test_data", "resume", "init_from", "dry_run"):
        assert described(text, key), key
    assert "epochs of the team recipe (now 7)" in text


@pytest.mark.parametrize("app", ["interpret", "variant_effect"])
def test_interpret_and_variant_effect_help_name_their_own_keys_only(app: str) -> None:
    text = help_text(app)
    assert text.startswith(f"{app}.py: ")  # what the tool does, first
    assert "== Examples ==" in text and f"python {app}.py ckpt_path=" in text
    missing = [key for key in own_keys(app) if not described(text, key)]
    assert not missing, f"{app}.py --help does not describe {missing}"
    assert "batch_size: 64" in help_text(app, "batch_size=64")  # the defaults, as composed
    listed = [group for group in TRAINING_GROUPS if any(line.startswith(f"{group}: ") for line in text.splitlines())]
    assert not listed, f"{app}.py --help lists training groups {listed}"
