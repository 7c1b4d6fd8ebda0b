"""BHI (rank 2) blocks, configs and recipe: parameter counts, shapes, schedule, one training step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.blocks.base import count_params
from src.blocks.bhi import BhiCore, BhiFinal, BhiFirst
from src.lit_modules.metrics import metric_names
from src.lit_modules.objectives import RegressionObjective

CONF = Path(__file__).resolve().parents[1] / "conf"


def load_block(group: str):
    """The ``block`` partial of ``conf/<group>/bhi.yaml``."""
    return instantiate(OmegaConf.load(CONF / group / "bhi.yaml").block)


def test_param_counts_bhi_own_model() -> None:
    first = BhiFirst(4, 110)
    core = BhiCore(512, 110)
    final = BhiFinal(320, 110)
    assert count_params(first) == 25_088
    assert count_params(core) == 4_592_960
    assert count_params(core.lstm) == 2_135_040
    assert count_params(final) == 2_257_089
    assert count_params(first) + count_params(core) + count_params(final) == 6_875_137


def test_param_counts_dream_variants() -> None:
    # DREAM-CNN / DREAM-RNN: BHI first 6 -> 320, BHI core on 320 channels
    assert count_params(BhiFirst(6, 150, out_channels=320)) == 23_360
    assert count_params(BhiCore(320, 150)) == 4_101_440


def test_yaml_defaults_are_bhi_own_model() -> None:
    first = load_block("first")(in_channels=4, seq_len=110)
    core = load_block("core")(in_channels=512, seq_len=110)
    final = load_block("final")(in_channels=320, seq_len=110, n_targets=1)
    assert (count_params(first), count_params(core), count_params(final)) == (25_088, 4_592_960, 2_257_089)
    assert first.out_channels == 512 and core.out_channels == 320
    cfg = OmegaConf.load(CONF / "final" / "bhi.yaml")
    objective = instantiate(cfg.objective)
    assert isinstance(objective, RegressionObjective)
    assert (objective.loss_name, objective.standardize, objective.huber_delta) == ("huber", True, 1.0)
    assert metric_names(cfg) == ["pearson", "spearman", "mse"]  # the registry default


@pytest.mark.parametrize("length", [110, 150, 80])
@pytest.mark.parametrize(("channels", "width"), [(4, 512), (6, 320)])
def test_shapes_any_length(length: int, channels: int, width: int) -> None:
    torch.manual_seed(0)
    first = BhiFirst(channels, length, out_channels=width).eval()
    core = BhiCore(width, length).eval()
    final = BhiFinal(320, length, n_targets=2, outputs_per_target=3).eval()
    x = torch.randn(2, channels, length)
    with torch.no_grad():
        h1 = first(x)
        h2 = core(h1)
        out = final(h2)
    assert h1.shape == (2, width, length)
    assert h2.shape == (2, 320, length)
    assert out.shape == (2, 2, 3)
    assert count_params(final) == 320 * length * 64 + 64 + 64 * 64 + 64 + 64 * 6 + 6


def test_first_branches_are_relu_and_concatenated() -> None:
    torch.manual_seed(0)
    first = BhiFirst(4, 110, out_channels=8, kernel_sizes=(9, 15)).eval()
    out = first(torch.randn(3, 4, 110))
    assert (out >= 0).all()
    # channels 0..3 come from the k=9 branch, 4..7 from the k=15 branch
    k9, k15 = (branch[0] for branch in first.convs.branches)
    assert k9.kernel_size == (9,) and k15.kernel_size == (15,)
    assert k9.out_channels == k15.out_channels == 4 and k9.bias is not None


def test_core_lstm_is_bidirectional() -> None:
    # the output at the first position must depend on the last input position (backward direction)
    torch.manual_seed(0)
    core = BhiCore(8, 40, hidden=6, out_channels=4).eval()
    x = torch.randn(1, 8, 40)
    x2 = x.clone()
    x2[:, :, -1] += 1.0
    with torch.no_grad():
        diff = (core(x) - core(x2))[..., :5].abs().sum()
    assert diff > 0


def test_uneven_split_rejected() -> None:
    with pytest.raises(ValueError, match="split evenly"):
        BhiFirst(4, 110, out_channels=511)
    with pytest.raises(ValueError, match="split evenly"):
        BhiCore(512, 110, out_channels=321)


def test_final_rejects_wrong_length() -> None:
    final = BhiFinal(320, 110)
    with pytest.raises(ValueError, match="BhiFinal"):
        final(torch.zeros(1, 320, 100))


def test_cosine_schedule_from_recipe() -> None:
    data = OmegaConf.create({"data": {"scale": {"epochs": 2, "batch_size": 8}}})
    cfg = OmegaConf.merge(data, {"recipe": OmegaConf.load(CONF / "recipe" / "bhi.yaml")})
    recipe = cfg.recipe
    assert (recipe.epochs, recipe.batch_size, recipe.lr) == (2, 8, 0.0015)
    assert recipe.rc_conjoined is True and recipe.grad_clip is None
    model = torch.nn.Linear(3, 1)
    optimizer = instantiate(recipe.optimizer)(model.parameters(), lr=recipe.lr)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == 0.01
    total = 20
    scheduler = instantiate(recipe.scheduler)(optimizer, total_steps=total, lr=recipe.lr)
    expected = {t: 0.0015 * (1 + math.cos(math.pi * t / total)) / 2 for t in (0, 1, 5, 10, 17, 20)}
    for t in range(total + 1):
        if t in expected:
            assert optimizer.param_groups[0]["lr"] == pytest.approx(expected[t], rel=1e-6, abs=1e-12)
        optimizer.step()
        scheduler.step()


def test_one_optimizer_step_smoke() -> None:
    torch.manual_seed(0)
    first = load_block("first")(in_channels=4, seq_len=110)
    core = load_block("core")(in_channels=512, seq_len=110)
    final = load_block("final")(in_channels=320, seq_len=110, n_targets=1)
    objective = instantiate(OmegaConf.load(CONF / "final" / "bhi.yaml").objective)
    model = torch.nn.Sequential(first, core, final).train()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (4, 110)), 4).float().transpose(1, 2)
    y = torch.rand(4, 1) * 17
    objective.fit(y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0015, weight_decay=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    loss = objective.loss(model(x), y)
    assert torch.isfinite(loss)
    loss.backward()
    for block in (first, core, final):
        grads = [p.grad for p in block.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    with torch.no_grad():
        assert objective.predict(model.eval()(x)).shape == (4, 1)
