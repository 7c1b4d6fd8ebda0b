"""Length policy of every processing: nothing cropped, padded or dropped silently.

``on_long`` / ``on_short`` = error (one line naming file, line and key) | trim / pad | drop, each
counted in one log line; a read of only N is a warning with its line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from src.datamodules.datamodule import PrixFixeDataModule
from src.datamodules.processing import build_processing
from src.datamodules.readers import read_dream
from src.errors import ConfigError, DataError
from tests.helpers import compose_cfg

ADAPTER_5P = "TGCATTTTTTTCACATC"  # the 17-nt left adapter of DREAM reads


def reads(n: int, length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [ADAPTER_5P + "".join(rng.choice(list("ACGT"), size=length - 17)) for _ in range(n)]


def dream_file(tmp_path: Path, seqs: list[str]) -> Path:
    path = tmp_path / "d.txt"
    path.write_text("".join(f"{s}\t{i % 7 + 0.5}\n" for i, s in enumerate(seqs)))
    return path


def setup(path: Path, processing: str, *overrides: str) -> PrixFixeDataModule:
    cfg = compose_cfg([f"processing={processing}", *overrides])
    dm = PrixFixeDataModule(lambda: read_dream(path), build_processing(cfg.processing), n_folds=4)
    dm.setup()
    return dm


@pytest.mark.parametrize(
    ("processing", "long_len", "policy", "kept", "fragment"),
    [
        ("autosome", 200, "trim", 60, "2 trimmed (processing.on_long=trim) of 60 reads"),
        ("autosome", 200, "drop", 58, "2 dropped as too long (processing.on_long=drop) of 60 reads"),
        ("unlockdna", 140, "drop", 58, "2 dropped as too long (processing.on_long=drop) of 60 reads"),
        ("bhi", 111, "trim", 60, "2 trimmed (processing.on_long=trim) of 60 reads"),
        ("onehot", 111, "drop", 58, "2 dropped as too long"),
    ],
)
def test_trim_and_drop_are_counted_in_one_line(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    processing: str,
    long_len: int,
    policy: str,
    kept: int,
    fragment: str,
) -> None:
    seqs = reads(58, 110, seed=1) + reads(2, long_len, seed=2)
    path = dream_file(tmp_path, seqs)
    with caplog.at_level(logging.WARNING, logger="src.datamodules.processing.base"):
        dm = setup(path, processing, f"processing.on_long={policy}", "data.seq_len=110")
    lines = [r.getMessage() for r in caplog.records if "length policy" in r.getMessage()]
    assert len(lines) == 1 and fragment in lines[0] and str(path) in lines[0], lines
    assert dm.train_set.n_sequences + dm.val_set.n_sequences == kept


def test_team_defaults() -> None:
    """Unlock_DNA drops over-long reads (as the team did), BHI and one-hot trim the 3' end, autosome stops."""
    policies = {
        name: (p.on_long, p.on_short)
        for name in ("autosome", "bhi", "unlockdna", "onehot")
        for p in [build_processing(compose_cfg([f"processing={name}"]).processing)]
    }
    assert policies == {
        "autosome": ("error", "error"),
        "bhi": ("trim", "error"),
        "unlockdna": ("drop", "error"),
        "onehot": ("trim", "error"),
    }


def test_short_read_pad_or_drop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seqs = reads(40, 110, seed=3) + [ADAPTER_5P]
    path = dream_file(tmp_path, seqs)
    with pytest.raises(DataError, match=r"d.txt:41: .*processing.on_short=error"):
        setup(path, "autosome")
    with caplog.at_level(logging.WARNING, logger="src.datamodules.processing.base"):
        dm = setup(path, "autosome", "processing.on_short=drop")
    assert dm.train_set.n_sequences + dm.val_set.n_sequences == 40
    assert any("1 dropped as too short (processing.on_short=drop)" in r.getMessage() for r in caplog.records)


def test_drop_everything_is_an_error(tmp_path: Path) -> None:
    path = dream_file(tmp_path, reads(5, 200, seed=4))
    with pytest.raises(DataError, match="length policy of processing autosome drops every read"):
        setup(path, "autosome", "processing.on_long=drop")


def test_all_n_read_is_a_warning_with_its_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seqs = reads(40, 110, seed=5)
    seqs[6] = "N" * 110
    seqs[9] = "n" * 100
    path = dream_file(tmp_path, seqs)
    with caplog.at_level(logging.WARNING, logger="src.datamodules.datamodule"):
        setup(path, "bhi")
    warned = [r.getMessage() for r in caplog.records if "only N" in r.getMessage()]
    assert warned == [
        f"{path}:7: read of 110 nt is only N (no sequence information)",
        f"{path}:10: read of 100 nt is only N (no sequence information)",
    ]


@pytest.mark.parametrize(("key", "value"), [("on_long", "pad"), ("on_short", "trim"), ("on_long", "crop")])
def test_unknown_policy_names_the_key(key: str, value: str) -> None:
    cfg = compose_cfg(["processing=autosome", f"processing.{key}={value}"])
    with pytest.raises(ConfigError, match=rf"processing.{key} must be one of"):
        build_processing(cfg.processing)
