"""autosome and resnet blocks: parameter counts of docs/menu.md, shapes, fixed reference bugs."""

from __future__ import annotations

import pytest
import torch

from src.blocks.autosome import AutosomeCore, AutosomeFinal, AutosomeFirst
from src.blocks.base import SameConv1d, count_params
from src.blocks.resnet import ResnetCore, ResnetFinal, ResnetFirst


@pytest.mark.parametrize(
    ("block", "shape", "params", "out"),
    [
        (lambda: AutosomeFirst(6, 150), (6, 150), 11_264, (256, 150)),
        (lambda: AutosomeCore(256, 150), (256, 150), 1_712_688, (64, 150)),
        (lambda: AutosomeCore(320, 150), (320, 150), 1_909_440, (64, 150)),
        (lambda: ResnetFirst(4, 150), (4, 150), 1_984, (64, 150)),
        (lambda: ResnetFirst(6, 150), (6, 150), 2_880, (64, 150)),
        (lambda: ResnetCore(64, 150), (64, 150), 7_226_112, (512, 19)),
        (lambda: ResnetCore(64, 110), (64, 110), 7_226_112, (512, 14)),
    ],
)
def test_body_blocks_match_menu(block, shape, params, out) -> None:
    module = block().eval()
    assert count_params(module) == params
    with torch.no_grad():
        assert tuple(module(torch.randn(2, *shape)).shape[1:]) == out


@pytest.mark.parametrize(
    ("block", "shape", "params"),
    [
        (lambda: AutosomeFinal(64, 150, 1, 18), (64, 150), 1_170),
        (lambda: ResnetFinal(512, 19, 1, 1), (512, 19), 4_981_761),
        (lambda: ResnetFinal(512, 14, 1, 1), (512, 14), 3_671_041),
    ],
)
def test_final_blocks_match_menu(block, shape, params) -> None:
    module = block().eval()
    assert count_params(module) == params
    out = module(torch.randn(3, *shape))
    assert out.shape == (3, module.n_targets, module.outputs_per_target)


def test_resnet_core_accepts_any_input_width() -> None:
    # the reference hard-coded 64 input channels; ours adapts with a projection shortcut
    for channels in (4, 6, 256, 320):
        core = ResnetCore(channels, 110).eval()
        assert core(torch.randn(1, channels, 110)).shape == (1, 512, 14)


def test_resnet_final_returns_prediction_per_target() -> None:
    final = ResnetFinal(8, 5, n_targets=2, outputs_per_target=1)
    assert final(torch.randn(4, 8, 5)).shape == (4, 2, 1)


def test_autosome_init_follows_team_recipe() -> None:
    torch.manual_seed(0)
    first = AutosomeFirst(6, 150)
    conv = first.stem[0]
    expected_sd = (2.0 / (7 * 256)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected_sd, rel=0.05)
    assert conv.bias is None
    core = AutosomeCore(256, 150)
    linear = core.stages[0].inverted_residual[2].gate[0]
    assert linear.weight.std().item() == pytest.approx(0.001, rel=0.1)
    assert torch.all(linear.bias == 0)


@pytest.mark.parametrize("kernel", [1, 2, 7, 10, 15])
def test_same_conv_keeps_length_and_pads_even_kernels_right(kernel: int) -> None:
    conv = SameConv1d(1, 1, kernel, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, 20)
    x[0, 0, 0] = 1.0  # an impulse at the first position
    y = conv(x)
    assert y.shape == x.shape
    # output j reads inputs j - left .. j - left + k - 1, so the impulse at 0 reaches outputs 0 .. left
    left = kernel // 2 - 1 if kernel % 2 == 0 else kernel // 2
    assert y[0, 0].sum().item() == left + 1
    assert torch.all(y[0, 0, : left + 1] == 1)
