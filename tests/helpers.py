"""Shared test helpers: paths, config composition, the one set of tiny-run settings, tiny models.

Test files import from here (never from ``conftest.py`` or from another test file). The block
families and processings are read from ``conf/``, so a new team is covered without editing tests.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CONF_DIR = ROOT / "conf"

# the block families (one conf/first/<team>.yaml each) and the processings
TEAMS = sorted(p.stem for p in (CONF_DIR / "first").glob("*.yaml"))
PROCESSINGS = sorted(p.stem for p in (CONF_DIR / "processing").glob("*.yaml"))
COMBINATIONS = list(itertools.product(TEAMS, TEAMS, TEAMS))
# per-option overrides that keep every block's structure but make it tiny (CPU, seconds)
SHRINK = {
    ("first", "autosome"): ["first.block.out_channels=16"],
    ("first", "resnet"): ["first.block.out_channels=16"],
    ("first", "bhi"): ["first.block.out_channels=16"],
    ("first", "unlockdna"): ["first.block.d_model=16", "first.block.n_tokens=4"],
    ("first", "camformers"): ["first.block.out_channels=16"],
    ("first", "nad"): ["first.block.d_model=16"],
    ("first", "sysu"): ["first.block.d_model=16"],
    ("first", "metformin"): ["first.block.hidden=8"],
    ("core", "autosome"): ["core.block.stage_widths=[16,16]"],
    ("core", "resnet"): ["core.block.widths=[16,16,16,16]", "core.block.depths=[1,1,1,1]"],
    ("core", "bhi"): ["core.block.hidden=8", "core.block.out_channels=16"],
    ("core", "unlockdna"): ["core.block.n_layers=1", "core.block.n_heads=2"],
    ("core", "camformers"): ["core.block.channels=16"],
    ("core", "nad"): ["core.block.widths=[16,16,16,16]", "core.block.fpn_channels=16"],
    ("core", "sysu"): ["core.block.n_layers=1", "core.block.n_heads=2"],
    ("core", "metformin"): ["core.block.hidden=8", "core.block.n_layers=1"],
    ("final", "autosome"): [],
    ("final", "resnet"): [],
    ("final", "bhi"): ["final.block.hidden=[8,8]"],
    ("final", "unlockdna"): [],
    ("final", "camformers"): ["final.block.hidden=[8,8]"],
    ("final", "nad"): [
        "final.block.depths=[1,1,1,1]",
        "final.block.heads=2",
        "final.block.dim_head=8",
        "final.block.deep_supervision=true",
    ],
    ("final", "sysu"): ["final.block.mlm=true"],
    ("final", "metformin"): [],
}
# processings whose length can be cut for speed (the others have fixed team layouts)
SHORT = {"autosome": 40, "bhi": 40, "onehot": 40, "camformers": 40, "metformin": 100, "sysu": 160, "mpra": 100}
SAMPLE = random.Random(15).sample(COMBINATIONS, 24)  # the fast suite's share of the cross product


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is absent")
    return path


def compose_cfg(overrides: list[str] | None = None, run_dir: Path | None = None):
    """Compose conf/train.yaml with overrides, outside of a Hydra run (paths.run_dir set explicitly)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from src.entry import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides or []))
    with open_dict(cfg):
        cfg.paths.run_dir = str(run_dir) if run_dir else "unused"
    return cfg


def tiny_run(data: bool = True, logger: str | None = "csv") -> list[str]:
    """Overrides that make a training run tiny: 400 synthetic reads (``data=False`` leaves the data
    alone), one epoch of 2 steps of 16, no progress bar or summary, no sanity check; ``logger=None``
    keeps the configured logger (W&B offline)."""
    overrides = ["data.source.n=400"] if data else []
    overrides += [
        "recipe.epochs=1",
        "recipe.batch_size=16",
        "recipe.steps_per_epoch=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.num_sanity_val_steps=0",
    ]
    return overrides + ([f"logger={logger}"] if logger else [])


FAST = tiny_run()

# tiny models that keep each family's structure
TINY_ONEHOT_RESNET = [
    "first=resnet",
    "core=resnet",
    "final=resnet",
    "processing=onehot",
    "core.block.depths=[1,1,1,1]",
    "core.block.widths=[8,8,8,8]",
    "first.block.out_channels=8",
]
TINY_AUTOSOME = [
    "first=autosome",
    "core=autosome",
    "final=autosome",
    "processing=autosome",
    "first.block.out_channels=16",
    "core.block.stage_widths=[16,16]",
]


def tiny_bhi_resnet(final: str = "resnet") -> list[str]:
    """A tiny model with dropout: BHI stem (8 channels), a one-block-per-stage ResNet core, one-hot input."""
    return [
        "first=bhi",
        "core=resnet",
        f"final={final}",
        "processing=onehot",
        "first.block.out_channels=8",
        "core.block.widths=[8,8,8,8]",
        "core.block.depths=[1,1,1,1]",
    ]


def tiny_dropout_run(n: int, epochs: int) -> list[str]:
    """:func:`tiny_bhi_resnet` (ResNet head) on ``n`` synthetic reads."""
    return [
        *tiny_bhi_resnet(),
        f"data.source.n={n}",
        f"recipe.epochs={epochs}",
        "recipe.batch_size=32",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


def load_bench(name: str):
    """The module of ``bench/<name>.py`` (bench scripts are files, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python train.py ARGS`` in ``cwd`` (one thread), output captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def train_tiny(run_dir: Path, overrides: list[str]) -> Path:
    """Train a tiny model through the real training path (:data:`FAST` + ``overrides``); its last checkpoint."""
    from src.train_task import train

    summary = train(compose_cfg(FAST + overrides, run_dir=run_dir))
    return Path(summary["last_checkpoint"])


# ----------------------------------------------------------------------------- sweeps

# the tiny run of every sweep job (W&B logger kept: sweep tests check its files; trainer.fast_dev_run is
# avoided on purpose, it turns off the loggers and checkpointing)
SWEEP_RUN = [*tiny_run(logger=None), "processing=onehot", "trainer.limit_val_batches=1"]
# shrunk blocks for sweeps over autosome and resnet (a few hundred parameters each)
SHRUNK_BLOCKS = {
    "first/autosome.yaml": {"block.out_channels": 8},
    "first/resnet.yaml": {"block.out_channels": 8},
    "core/autosome.yaml": {"block.stage_widths": [8, 8], "block.expansion": 2},
    "core/resnet.yaml": {"block.widths": [8, 8], "block.depths": [1, 1], "block.strides": [1, 2]},
}


def shrunk_conf(folder: Path) -> Path:
    """A copy of conf/ in ``folder`` with :data:`SHRUNK_BLOCKS` applied; returns the copy."""
    from omegaconf import OmegaConf

    conf = folder / "conf"
    shutil.copytree(CONF_DIR, conf)
    for rel, values in SHRUNK_BLOCKS.items():
        cfg = OmegaConf.load(conf / rel)
        for key, value in values.items():
            OmegaConf.update(cfg, key, value)
        OmegaConf.save(cfg, conf / rel)
    return conf


def run_sweep(
    conf: Path | None, sweep_dir: Path, *overrides: str, timeout: float = 180, status: int = 0
) -> subprocess.CompletedProcess:
    """``train.py -m`` with :data:`SWEEP_RUN`; returns the finished process (stdout and stderr merged)."""
    cmd = [sys.executable, "train.py", "-m", f"hydra.sweep.dir={sweep_dir}", *SWEEP_RUN, *overrides]
    if conf is not None:
        cmd[2:2] = ["-cp", str(conf)]
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", HYDRA_FULL_ERROR="1")
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    assert proc.returncode == status, proc.stdout[-4000:]
    return proc


def make_ctx(tmp_path: Path, rerun: bool = False, **overrides):
    """A sweep ``JobContext`` under ``tmp_path/sweep`` (default: one autosome-bhi-resnet job)."""
    from src.sweep.identity import JobContext

    overrides = overrides or {"first": "autosome", "core": "bhi", "final": "resnet", "seed": 1}
    job_dir = tmp_path / "sweep" / "job"
    job_dir.mkdir(parents=True, exist_ok=True)
    return JobContext(sweep_dir=tmp_path / "sweep", job_dir=job_dir, overrides=overrides, rerun=rerun)


def small_cfg(**extra):
    """The few config keys a sweep job's bookkeeping reads."""
    from omegaconf import OmegaConf

    return OmegaConf.create({"dry_run": False, "debug": False, "logger": {"wandb": {"group": None}}, **extra})


def read_wandb_records(path: Path) -> list:
    """Records of an offline W&B run file (``run-<id>.wandb``: a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:4] == b":W&B", "not a W&B transaction log"
    block, pos, pending, records = 32 * 1024, 7, b"", []
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:  # the rest of a block too small for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        data = raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # full
            records.append(data)
        elif kind == 2:  # first
            pending = data
        elif kind == 3:  # middle
            pending += data
        elif kind == 4:  # last
            records.append(pending + data)
            pending = b""
    out = []
    for data in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        out.append(record)
    return out
