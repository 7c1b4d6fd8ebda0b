"""Targets: a value outside the data set's declared range is named (file and line) or dropped by policy,
soft bins are re-fit only for data sets that declare it, and a collapse warning says what it checked."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch

from src.datamodules.synthetic import generate
from src.errors import ConfigError, DataError
from src.lit_modules.collapse import collapse_checks
from src.lit_modules.objectives import SoftBinObjective
from src.train_task import build_datamodule, build_module
from tests.helpers import TINY_ONEHOT_RESNET, compose_cfg, tiny_run


def dream_file(path: Path, n: int = 200, bad: dict[int, str] | None = None) -> Path:
    """``n`` DREAM lines (``seq<TAB>expression``, 0..17); ``bad`` replaces the target of some 1-based lines."""
    records = generate(n, seed=3)
    lines = [f"{s}\t{float(t[0]):g}" for s, t in zip(records.sequences, records.targets.reshape(n, -1))]
    for line, value in (bad or {}).items():
        lines[line - 1] = f"{lines[line - 1].split(chr(9))[0]}\t{value}"
    path.write_text("\n".join(lines) + "\n")
    return path


def dream_datamodule(path: Path, *extra: str):
    cfg = compose_cfg(
        [*tiny_run(data=False), *TINY_ONEHOT_RESNET, "data=dream", f"data.path={path}", "data.cache=false", *extra]
    )
    module = build_module(cfg)
    return build_datamodule(cfg, module), module


@pytest.mark.parametrize("value", ["1e30", "-50", "17.5"])
def test_a_target_outside_the_declared_range_names_file_and_line(tmp_path: Path, value: str) -> None:
    path = dream_file(tmp_path / "train.txt", bad={137: value})
    datamodule, _ = dream_datamodule(path)
    with pytest.raises(DataError) as err:
        datamodule.setup("fit")
    message = str(err.value)
    assert message.startswith(f"{path}:137: target ") and "outside the data set's declared range [0, 17]" in message
    assert "data.out_of_range=drop" in message


def test_out_of_range_drop_leaves_the_reads_out_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = dream_file(tmp_path / "train.txt", bad={5: "1e30", 60: "-50"})
    datamodule, module = dream_datamodule(path, "data.out_of_range=drop")
    with caplog.at_level(logging.WARNING):
        datamodule.setup("fit")
    kept = datamodule.train_set.n_sequences + datamodule.val_set.n_sequences
    assert kept == 198
    assert float(datamodule.train_targets.max()) <= 17 and float(datamodule.train_targets.min()) >= 0
    warned = [r.getMessage() for r in caplog.records if "outside the declared range" in r.getMessage()]
    assert warned == [
        f"{path}: 2 of 200 reads have a target outside the declared range [0, 17] and are left out "
        "(data.out_of_range=drop; the first at line 5: 1e+30)"
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.out_of_range=clip", "data.out_of_range must be one of error, drop (got 'clip')"),
        ("data.target_range=[17,0]", "data.target_range=[17, 0]: low must not exceed high"),
    ],
)
def test_a_bad_range_policy_names_the_key(tmp_path: Path, override: str, message: str) -> None:
    datamodule, _ = dream_datamodule(dream_file(tmp_path / "train.txt"), override)
    with pytest.raises(ConfigError, match=re.escape(message)):
        datamodule.setup("fit")


def test_soft_bins_are_refit_only_where_the_data_set_declares_it() -> None:
    """DREAM keeps its 0..17 bin scale (a stray value is an error, never a re-binning); lentiMPRA re-bins."""
    for data, rescale in (("dream", "none"), ("synthetic", "none"), ("human_mpra", "fit"), ("drosophila_starr", "fit")):
        cfg = compose_cfg([f"data={data}", "final=autosome", *([] if data == "synthetic" else ["data.path=x"])])
        assert cfg.final.objective.rescale == rescale, data
    stray = torch.tensor([[3.0], [11.0], [1e30]])
    for rescale in ("none", "auto"):
        objective = SoftBinObjective(rescale=rescale)
        with pytest.raises(ConfigError, match=r"training targets span \[3, 1e\+30\], outside the soft-bin scale 0..17"):
            objective.fit(stray)
        assert not objective.rescaled
    objective = SoftBinObjective(rescale="fit")
    objective.fit(torch.tensor([[-2.0], [4.0]]))
    assert objective.rescaled


def test_collapse_warning_names_what_it_checked() -> None:
    constant = collapse_checks(torch.full((50, 1), 9.0), "resnet", 0.005, (0, 17))
    assert "the training targets are constant (every one is 9): nothing to learn" in constant
    spread = torch.cat([torch.linspace(4, 12, 199), torch.tensor([5000.0])]).reshape(-1, 1)
    stretched = collapse_checks(spread, "resnet", 0.001)
    assert "the training targets vary" in stretched and "a few extreme values stretch that range" in stretched
    assert "core=" not in stretched
    rate = collapse_checks(torch.linspace(0, 17, 100).reshape(-1, 1), "bhi", 0.005, (0, 17))
    assert rate.startswith("Checked: the training targets vary")
    assert "within the declared range [0, 17]" in rate and "stretch" not in rate
    assert "recipe.lr=0.005: core=bhi collapses at the shared peak rate of 0.005 in fp32 too" in rate
