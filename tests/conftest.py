"""Shared fixtures: shrunken Hydra configs, the shared data folder, offline W&B."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")
# the binary data cache of test runs goes to a private folder, never the user's ~/.cache
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="prixfixe-test-cache-")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CONF_DIR = ROOT / "conf"

# tests use tiny models, for which one thread is fastest (and immune to other processes' load)
torch.set_num_threads(1)


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is absent")
    return path


@pytest.fixture
def dream_sample() -> Path:
    return shared_file("dream", "train_sample.txt")


def compose_cfg(overrides: list[str] | None = None, run_dir: Path | None = None):
    """Compose conf/train.yaml with overrides, outside of a Hydra run (paths.run_dir set explicitly)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    import src.entry  # noqa: F401  (registers the resolvers conf/ uses)

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides or []))
    with open_dict(cfg):
        cfg.paths.run_dir = str(run_dir) if run_dir else "unused"
    return cfg


def tiny_dropout_run(n: int, epochs: int) -> list[str]:
    """A tiny model with dropout (BHI stem, ResNet core and head, one-hot input) on ``n`` synthetic reads."""
    return [
        "first=bhi",
        "core=resnet",
        "final=resnet",
        "processing=onehot",
        "first.block.out_channels=8",
        "core.block.widths=[8,8,8,8]",
        "core.block.depths=[1,1,1,1]",
        f"data.source.n={n}",
        f"recipe.epochs={epochs}",
        "recipe.batch_size=32",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


# overrides that make a training run tiny: few sequences, short epochs, no progress bar, CSV logs
FAST = [
    "data.source.n=400",
    "recipe.epochs=1",
    "recipe.batch_size=16",
    "recipe.steps_per_epoch=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
    "logger=csv",
]
