"""Metformin-121 (rank 7) blocks, processing and objective: counts (trainable vs Keras), GRU layout, pooling, y / 22."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.blocks.base import count_params
from src.blocks.metformin import AttentionWithContext, MetforminCore, MetforminFinal, MetforminFirst
from src.datamodules.encoding import decode, encode_array
from src.datamodules.processing import build_processing
from src.errors import LengthPolicyError

CONF = Path(__file__).resolve().parents[1] / "conf"


def load_block(group: str):
    return instantiate(OmegaConf.load(CONF / group / "metformin.yaml").block)


def test_param_counts_trainable_and_keras() -> None:
    first = load_block("first")(in_channels=4, seq_len=142)
    core = load_block("core")(in_channels=128, seq_len=142)
    final = load_block("final")(in_channels=128, seq_len=142, n_targets=1)
    counts = (count_params(first), count_params(core), count_params(final))
    assert counts == (26_880, 521_472, 17_025)
    assert sum(counts) == 565_377
    # Keras' summary also counts BatchNorm's moving mean and variance (buffers here)
    moving = sum(b.numel() for name, b in final.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert moving == 256 and sum(counts) + moving == 565_633
    assert len(core.grus.layers) == 7 and all(g.bidirectional and g.hidden_size == 64 for g in core.grus.layers)


def test_gru_init_is_keras_style() -> None:
    torch.manual_seed(0)
    gru = MetforminFirst(4, 10, hidden=8).gru.layers[0]
    for name, param in gru.named_parameters():
        if "bias" in name:
            assert param.abs().sum() == 0
        elif "weight_hh" in name:
            for gate in param.chunk(3):  # each 8 x 8 recurrent gate kernel is orthogonal
                torch.testing.assert_close(gate @ gate.T, torch.eye(8), atol=1e-5, rtol=0)


def test_shapes_any_length_and_sigmoid() -> None:
    torch.manual_seed(0)
    first, core = MetforminFirst(6, 50, hidden=4), MetforminCore(8, 50, hidden=4, n_layers=2)
    final = MetforminFinal(8, 50, n_targets=2).eval()
    h = core(first(torch.randn(3, 6, 50)))
    assert h.shape == (3, 8, 50)
    out = final(h)
    assert out.shape == (3, 2, 1) and ((out > 0) & (out < 1)).all()
    plain = MetforminFinal(8, 50, sigmoid=False).eval()
    assert plain(h).shape == (3, 1, 1)
    with pytest.raises(ValueError, match="n_layers"):
        MetforminCore(8, 50, n_layers=0)


def test_attention_pooling_by_hand() -> None:
    torch.manual_seed(0)
    pool = AttentionWithContext(3)
    h = torch.randn(2, 5, 3)
    u = torch.tanh(h @ pool.proj.weight.T + pool.proj.bias)
    a = torch.softmax(u @ pool.context, dim=1)
    torch.testing.assert_close(pool(h), (a[..., None] * h).sum(1))


def test_processing_right_aligns_and_never_cuts() -> None:
    proc = build_processing(OmegaConf.load(CONF / "processing" / "metformin.yaml"))
    assert (proc.channels, proc.seq_len, proc.n_value) == (4, 142, 1.0)
    small = type(proc)(seq_len=8)
    codes, lengths = encode_array(["ACGTN", "TTTTTTTT"])
    prepared = small.prepare(codes, lengths)["codes"]
    assert [decode(row) for row in prepared] == ["ACGTN", "TTTTTTTT"]
    x = small.make_batch({"codes": torch.from_numpy(prepared)}, None, None, False)["x"]
    assert x[0, :, :3].sum() == 0  # left padding is zeros
    assert x[0, :, 3].tolist() == [1, 0, 0, 0] and x[0, :, 7].tolist() == [1, 1, 1, 1]  # A ... N = all ones
    with pytest.raises(LengthPolicyError, match="longer than processing.seq_len=8"):
        small.length_policy(encode_array(["A" * 9])[1])


def test_objective_is_mse_on_y_over_22() -> None:
    objective = instantiate(OmegaConf.load(CONF / "final" / "metformin.yaml").objective)
    y = torch.tensor([[0.0], [11.0], [17.0]])
    torch.testing.assert_close(objective.transform(y), y / 22)
    head = torch.tensor([[[0.5]], [[0.25]], [[0.0]]])
    torch.testing.assert_close(objective.predict(head), torch.tensor([[11.0], [5.5], [0.0]]))
    torch.testing.assert_close(objective.loss(head, y), ((head[..., 0] - y / 22) ** 2).mean())
