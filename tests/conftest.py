"""Test-session set-up (offline W&B, private cache, one thread) and fixtures; helpers live in tests/helpers.py."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

from tests.helpers import shared_file, shrunk_conf

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")
# the binary data cache of test runs goes to a private folder, never the user's ~/.cache
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="prixfixe-test-cache-")

# tests use tiny models, for which one thread is fastest (and immune to other processes' load)
torch.set_num_threads(1)


@pytest.fixture
def dream_sample() -> Path:
    return shared_file("dream", "train_sample.txt")


@pytest.fixture(scope="module")
def tiny_conf(tmp_path_factory) -> Path:
    """A copy of conf/ with the autosome and resnet blocks shrunk to a few hundred parameters."""
    return shrunk_conf(tmp_path_factory.mktemp("conf"))
