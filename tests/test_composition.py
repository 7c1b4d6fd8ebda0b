"""Composition: every first x core x final combination builds with inferred shapes and trains."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from hydra.utils import instantiate

from src.blocks.base import split_output
from src.errors import CompositionError
from src.lit_modules.composer import compose
from src.train_task import build_module
from tests.helpers import CONF_DIR, PROCESSINGS, SHORT, SHRINK, compose_cfg

BLOCKS = ["autosome", "resnet"]
FINALS = sorted(p.stem for p in (CONF_DIR / "final").glob("*.yaml"))


def one_step(module, processing_batch) -> float:
    """One optimizer step through the module's own training_step (outside a Trainer)."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() outside a Trainer
        loss = module.training_step(processing_batch, 0)
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize(("first", "core", "final"), list(itertools.product(BLOCKS, BLOCKS, BLOCKS)))
@pytest.mark.parametrize("processing", ["autosome", "onehot"])
def test_every_combination_composes_and_trains(first: str, core: str, final: str, processing: str) -> None:
    cfg = compose_cfg([f"first={first}", f"core={core}", f"final={final}", f"processing={processing}", "logger=none"])
    module = build_module(cfg)
    proc = module.processing
    c0, l0 = proc.channels, proc.seq_len
    shapes = [(r.in_shape, r.out_shape) for r in module.net.report]
    assert shapes[0][0] == (c0, l0)
    # each block's input is the previous block's probed output: nothing wired by hand
    assert shapes[1][0] == shapes[0][1] and shapes[2][0] == shapes[1][1]
    torch.manual_seed(0)
    codes = torch.randint(0, 4, (4, l0), dtype=torch.uint8)
    y = torch.tensor([[3.0], [7.5], [11.0], [15.25]])
    batch = proc.make_batch({"codes": codes}, y, torch.tensor([0, 1, 0, 1]) % proc.train_views, train=True)
    assert batch["x"].shape == (4, c0, l0)
    loss = one_step(module, batch)
    assert loss == loss and loss < 1e6
    module.eval()
    with torch.no_grad():
        pred = module.predict_expression(batch["x"])
    assert pred.shape == (4, 1) and torch.isfinite(pred).all()


def test_impossible_combination_names_blocks_and_shapes() -> None:
    cfg = compose_cfg(["first=resnet", "core=resnet", "final=resnet", "processing=onehot", "core.block.depths=[3,4]"])
    with pytest.raises(CompositionError) as err:
        build_module(cfg)
    message = str(err.value)
    assert "core block 'resnet'" in message and "(channels=64, seq_len=110)" in message
    assert "first=resnet core=resnet final=resnet" in message


def test_final_block_shape_mismatch_is_reported() -> None:
    cfg = compose_cfg(["final=resnet"])
    first, core = instantiate(cfg.first.block), instantiate(cfg.core.block)

    def wrong_head(in_channels: int, seq_len: int, n_targets: int, outputs_per_target: int):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))

    with pytest.raises(CompositionError, match=r"objective needs \(B, 1, 1\)"):
        compose(first, core, wrong_head, 6, 150)


def test_dry_run_prints_graph_and_param_count(capsys: pytest.CaptureFixture[str]) -> None:
    from src.train_task import train

    cfg = compose_cfg(["dry_run=true"])
    summary = train(cfg)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "params: 1725122" and summary["params"] == 1_725_122
    text = "\n".join(out)
    for row in ("first  autosome", "(6, 150)", "(256, 150)", "(64, 150)", "(1, 18)", "11,264", "1,712,688", "1,170"):
        assert row in text


def test_prediction_tokens_reach_the_final_block_only_through_length_preserving_cores() -> None:
    tiny = ["first.block.d_model=16", "first.block.n_tokens=4", "processing=unlockdna", "logger=none"]
    kept = build_module(compose_cfg([*tiny, "first=unlockdna", "core=bhi", "final=unlockdna"]))
    assert kept.net.final.prefix_tokens == 4
    # the ResNet core shortens 204 positions to 26: the tokens are gone, the head averages all positions
    pooled = build_module(
        compose_cfg([*tiny, "first=unlockdna", "core=resnet", "final=unlockdna", "core.block.depths=[1,1,1,1]"])
    )
    assert pooled.net.final.prefix_tokens == 0
    assert pooled.net.report[1].out_shape[1] < 32


def test_segment_layouts_pass_on_while_the_length_is_kept() -> None:
    from functools import partial

    from src.blocks.camformers import CamformersCore
    from src.blocks.nad import NadCore, NadFinal
    from src.blocks.resnet import ResnetFirst
    from src.blocks.sysu import SysuCore, SysuFinal, SysuFirst

    sysu_first = partial(SysuFirst, d_model=8)
    frames = compose(sysu_first, partial(SysuCore, n_layers=1, n_heads=2), SysuFinal, 4, 30)
    assert frames.core.segment_lengths == frames.final.segment_lengths == (12, 12, 12)
    # a pooling core dissolves the frames: the head then averages every position
    pooled = compose(sysu_first, partial(CamformersCore, channels=8), SysuFinal, 4, 30)
    assert pooled.final.segment_lengths is None
    # a core that declares its own layout replaces the previous one
    tiny_nad = partial(NadFinal, depths=(1, 1, 1, 1), heads=2, dim_head=4)
    pyramid = compose(sysu_first, partial(NadCore, widths=(8, 8, 8, 8), fpn_channels=8), tiny_nad, 4, 30)
    assert pyramid.final.segment_lengths == (5, 9, 18, 36)

    class Liar(ResnetFirst):  # declares segments that do not add up to its output length
        segment_lengths = (1, 2)

    with pytest.raises(CompositionError, match="declares segments"):
        compose(Liar, partial(SysuCore, n_layers=1, n_heads=2), SysuFinal, 4, 30)


def family_net(family: str, extra: list[str] | None = None):
    """The family's own first, core and final blocks (shrunk as in the menu test) under its own processing."""
    processing = family if family in PROCESSINGS else "onehot"
    overrides = [f"first={family}", f"core={family}", f"final={family}", f"processing={processing}", "logger=none"]
    overrides += SHRINK["first", family] + SHRINK["core", family] + SHRINK["final", family]
    overrides += [f"processing.seq_len={SHORT[processing]}"] if processing in SHORT else []
    overrides += ["processing.flank=20"] if processing == "sysu" else []  # a short read needs a short flank
    torch.manual_seed(0)
    return build_module(compose_cfg(overrides + list(extra or []))).net.eval()


@pytest.mark.parametrize("final", FINALS)
@torch.no_grad()
def test_output_layers_bias_shifts_the_prediction_exactly(final: str) -> None:
    """Adding delta to the bias of each layer a final block names in output_layers() adds delta to its output;
    a wrong layer (an MLM or reconstruction head, one of several averaged heads) fails this."""
    extra = ["final.block.sigmoid=false"] if final == "metformin" else []  # a sigmoid output has no such layer
    net = family_net(final, extra)
    channels, length = net.report[0].in_shape
    x = torch.rand(3, channels, length, generator=torch.Generator().manual_seed(1))
    h = split_output(net.core(split_output(net.first(x))[0]))[0]  # the final block's input
    head = net.final

    def predict() -> torch.Tensor:
        return split_output(head(h))[0]  # the raw head output, before any objective

    before = predict()
    layers = head.output_layers()
    assert layers and all(layer.bias.numel() == head.n_targets * head.outputs_per_target for layer in layers)
    delta = 0.5 + 0.25 * torch.arange(head.n_targets * head.outputs_per_target, dtype=torch.float32)
    for layer in layers:
        layer.bias.add_(delta.to(layer.bias))
    shift = delta.view(1, head.n_targets, head.outputs_per_target)
    torch.testing.assert_close(predict(), before + shift, rtol=1e-5, atol=1e-5)


def test_a_squashed_output_names_no_output_layer_and_every_final_must_name_its_own() -> None:
    from src.blocks.base import FinalBlock
    from src.blocks.metformin import MetforminFinal

    assert MetforminFinal(8, 10, sigmoid=True).output_layers() == []

    class Unnamed(FinalBlock):
        def forward(self, x, batch=None):
            return x.mean(dim=(1, 2)).view(-1, 1, 1)

    with pytest.raises(NotImplementedError, match="Unnamed must implement output_layers"):
        Unnamed(8, 10).output_layers()
