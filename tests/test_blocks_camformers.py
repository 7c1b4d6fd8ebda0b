"""Camformers (rank 4) blocks, configs and recipe: parameter counts, residual wiring, pooling, plateau schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from src.blocks.base import count_params
from src.blocks.camformers import CamformersCore, CamformersFinal, CamformersFirst
from src.datamodules.encoding import encode_array
from src.datamodules.processing import build_processing
from src.lit_modules.objectives import RegressionObjective

CONF = Path(__file__).resolve().parents[1] / "conf"


def load_block(group: str):
    return instantiate(OmegaConf.load(CONF / group / "camformers.yaml").block)


def test_param_counts_own_model() -> None:
    first = load_block("first")(in_channels=4, seq_len=110)
    core = load_block("core")(in_channels=512, seq_len=110)
    final = load_block("final")(in_channels=512, seq_len=26, n_targets=1)
    assert (count_params(first), count_params(core), count_params(final)) == (22_016, 13_114_880, 3_474_177)
    assert count_params(first) + count_params(core) + count_params(final) == 16_611_073
    assert count_params(core.conv2_0) == 2_622_976  # one 512 -> 512 k10 ConvBlock
    assert isinstance(core.skip1, nn.Identity)  # no projection in the original layout
    objective = instantiate(OmegaConf.load(CONF / "final" / "camformers.yaml").objective)
    assert isinstance(objective, RegressionObjective) and objective.loss_name == "l1" and not objective.standardize


def test_shapes_and_pool_length() -> None:
    torch.manual_seed(0)
    first, core = CamformersFirst(4, 110, out_channels=8).eval(), CamformersCore(8, 110, channels=8).eval()
    h = first(torch.randn(2, 4, 110))
    assert h.shape == (2, 8, 110)
    assert core(h).shape == (2, 8, (110 - 10) // 4 + 1)  # MaxPool1d(10, 4): 110 -> 26
    # another width: a 1x1 projection adapts pair 1's skip
    other = CamformersCore(6, 150, channels=8)
    assert other(torch.randn(2, 6, 150)).shape == (2, 8, 36)
    with pytest.raises(ValueError, match="seq_len >= 10"):
        CamformersCore(8, 9)


def test_residual_pairs_add_their_skips() -> None:
    torch.manual_seed(0)
    core = CamformersCore(4, 20, channels=4, pool=0).eval()
    x = torch.randn(1, 4, 20)
    # the three residual pairs written out by hand
    with torch.no_grad():
        h1 = core.conv1_1(x) + x
        h2 = core.conv2_1(core.conv2_0(h1)) + core.conv2_0(h1)
        h3 = core.conv3_0(h2)
        expected = core.conv3_1(h3) + h3
    torch.testing.assert_close(core(x), expected)


def test_final_rejects_other_length() -> None:
    final = CamformersFinal(8, 26, hidden=(4, 4))
    assert count_params(final) == 8 * 26 * 4 + 4 + 4 * 4 + 4 + 4 + 1
    with pytest.raises(ValueError, match="built for"):
        final(torch.randn(2, 8, 25))


def test_processing_pads_with_zeros_and_cuts_at_110() -> None:
    proc = build_processing(OmegaConf.load(CONF / "processing" / "camformers.yaml"))
    assert (proc.channels, proc.seq_len, proc.n_value) == (4, 110, 0.0)
    codes, lengths = encode_array(["ACGN" + "A" * 100, "C" * 120])
    fields = {k: torch.from_numpy(v) for k, v in proc.prepare(codes, lengths).items()}
    x = proc.make_batch(fields, None, None, False)["x"]
    assert x.shape == (2, 4, 110)
    assert x[0, :, 3].sum() == 0 and x[0, :, 104:].sum() == 0  # N and the 3' padding are all zeros
    assert x[1].sum() == 110  # the 120-nt read is cut at 110


def test_recipe_plateau_reduces_after_patience() -> None:
    recipe = OmegaConf.load(CONF / "recipe" / "camformers.yaml")
    param = nn.Parameter(torch.zeros(1))
    opt = instantiate(recipe.optimizer)([param], lr=recipe.lr)
    assert opt.defaults["weight_decay"] == 0.001
    sched = instantiate(recipe.scheduler)(opt, total_steps=100, lr=recipe.lr)
    assert sched.monitor == "val/loss"
    for _ in range(11):  # one best epoch, then 10 without improvement: lr unchanged until patience is exceeded
        sched.step(1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    sched.step(1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
