"""Unlock_DNA blocks: parameter counts, shapes, attention layout, auxiliary loss, recipe schedule."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from src.blocks.base import count_params, split_output
from src.blocks.unlockdna import MultiHeadSelfAttention, UnlockdnaCore, UnlockdnaFinal, UnlockdnaFirst
from src.datamodules.encoding import encode_array
from src.datamodules.processing.unlockdna import UnlockdnaProcessing
from src.lit_modules.objectives import RegressionObjective

CONF = Path(__file__).resolve().parents[1] / "conf"


def _onehot_batch(b: int = 2, length: int = 200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 5, (b, length), generator=g)
    return nn.functional.one_hot(codes, 6).transpose(1, 2).float()


# ---------------------------------------------------------------------------------------------- counts


def test_first_params_and_shape():
    torch.manual_seed(0)
    first = UnlockdnaFirst(6, 200)
    assert count_params(first) == 135_680
    assert first.prefix_tokens == 32
    out = first(_onehot_batch())
    assert out.shape == (2, 512, 232)


def test_core_original_params_and_forward():
    torch.manual_seed(0)
    core = UnlockdnaCore(512, 232, n_heads=8, key_dim=512, positional_embedding=False)
    assert count_params(core) == 47_286_272
    assert count_params(core.layers[0]) == 11_821_568
    core.eval()
    with torch.no_grad():
        out = core(torch.randn(1, 512, 232))
    assert out.shape == (1, 512, 232)
    assert torch.isfinite(out).all()


def test_core_dream_attn_params():
    core = UnlockdnaCore(256, 150, n_layers=4, n_heads=4, key_dim=None, kernel_size=15, positional_embedding=True)
    assert count_params(core) == 4_523_520
    # 8 heads split the same width: same count (DREAM-Attn asked for 8 and ran 4)
    assert count_params(UnlockdnaCore(256, 150, n_heads=8, positional_embedding=True)) == 4_523_520


def test_core_width_not_divisible_by_heads():
    core = UnlockdnaCore(30, 12, n_layers=1, n_heads=4)  # ceil(30 / 4) = 8 per head
    assert core.layers[0].attn.key_dim == 8
    assert core(torch.randn(2, 30, 12)).shape == (2, 30, 12)


def test_final_params():
    final = UnlockdnaFinal(512, 232, prefix_tokens=32)
    assert count_params(final) == 3_591
    assert "prefix_tokens" in inspect.signature(UnlockdnaFinal).parameters  # the composer passes it on


def test_chain_shapes_original_layout():
    torch.manual_seed(0)
    first = UnlockdnaFirst(6, 200)
    core = UnlockdnaCore(512, 232, n_layers=1, n_heads=8, key_dim=64)
    final = UnlockdnaFinal(512, 232, prefix_tokens=first.prefix_tokens)
    for block in (first, core, final):
        block.eval()
    with torch.no_grad():
        h = first(_onehot_batch())
        h = core(h)
        out = final(h)
    assert h.shape == (2, 512, 232)
    assert out.shape == (2, 1, 1)


# ---------------------------------------------------------------------------------------------- first


def test_first_tokens_and_strand():
    torch.manual_seed(0)
    first = UnlockdnaFirst(6, 200, d_model=16, n_tokens=4)
    with torch.no_grad():
        first.expression.bias.normal_()
    x = _onehot_batch(3)
    out = first(x)
    # every prediction token equals the Dense bias (it is applied to zeros)
    expected = first.expression.bias.view(1, 16, 1).expand(3, 16, 4)
    torch.testing.assert_close(out[:, :, :4], expected)
    out[:, :, :4].sum().backward()
    assert torch.count_nonzero(first.expression.weight.grad) == 0  # the kernel never learns
    assert torch.count_nonzero(first.expression.bias.grad) > 0
    # strand index: 0 on the given strand (0-99), 1 on the reverse complement (100-199)
    assert first.strand_index[:100].eq(0).all() and first.strand_index[100:].eq(1).all()
    odd = UnlockdnaFirst(6, 7, d_model=4, n_tokens=0)
    assert odd.strand_index.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert odd.prefix_tokens == 0 and odd(torch.zeros(1, 6, 7)).shape == (1, 4, 7)


def test_first_kmer_same_padding():
    first = UnlockdnaFirst(6, 20, d_model=8, n_tokens=0, strand_embedding=False)
    assert count_params(first) == 6 * 8 * 10 + 8 + 20 * 8
    # a single base at position p reaches outputs p-5 .. p+4 (pad 4 left / 5 right)
    x = torch.zeros(1, 6, 20)
    x[0, 0, 10] = 1.0
    with torch.no_grad():
        first.kmer.bias.zero_()
        first.position.zero_()
        touched = first(x).abs().sum(1)[0].nonzero().flatten().tolist()
    assert touched == list(range(5, 15))


# ---------------------------------------------------------------------------------------------- attention


def test_attention_matches_torch_multihead():
    torch.manual_seed(0)
    d, heads = 32, 4
    ours = MultiHeadSelfAttention(d, heads)
    ref = nn.MultiheadAttention(d, heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.k.weight, ours.v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q.bias.normal_(), ours.k.bias.normal_(), ours.v.bias.normal_()]))
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias.normal_())
    assert count_params(ours) == count_params(ref)
    x = torch.randn(3, 11, d)
    expected, _ = ref(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


def test_number_of_heads_is_used():
    torch.manual_seed(0)
    two = UnlockdnaCore(32, 10, n_layers=1, n_heads=2, dropout=0.0)
    four = UnlockdnaCore(32, 10, n_layers=1, n_heads=4, dropout=0.0)
    four.load_state_dict(two.state_dict())  # identical shapes and weights, only the head split differs
    x = torch.randn(2, 32, 10)
    assert not torch.allclose(two(x), four(x), atol=1e-4)
    assert two.layers[0].attn.n_heads == 2 and four.layers[0].attn.n_heads == 4


def test_keras_layout_attention_width():
    attn = MultiHeadSelfAttention(16, 2, key_dim=16)
    assert attn.q.out_features == 32 and attn.out.in_features == 32
    assert count_params(attn) == 3 * (16 * 32 + 32) + 32 * 16 + 16


# ---------------------------------------------------------------------------------------------- final


def test_final_aux_loss_only_with_mask():
    torch.manual_seed(0)
    final = UnlockdnaFinal(16, 12, prefix_tokens=2)
    x = torch.randn(3, 16, 12)
    tokens = torch.randint(0, 5, (3, 10))
    mask = torch.rand(3, 10) < 0.5
    out, aux = split_output(final(x, {"tokens": tokens, "mask": mask}))
    assert out.shape == (3, 1, 1)
    assert set(aux) == {"recon"}
    assert aux["recon"].dim() == 0 and torch.isfinite(aux["recon"])
    # hand computation: masked CE sum / (n masked + 1)
    logits = final.reconstruction(x.transpose(1, 2)[:, 2:])
    ce = nn.functional.cross_entropy(logits.reshape(-1, 6), tokens.reshape(-1), reduction="none").view(3, 10)
    torch.testing.assert_close(aux["recon"], (ce * mask).sum() / (mask.sum() + 1))
    # absent without mask, with only one key, and when the sequence length does not match
    assert isinstance(final(x), torch.Tensor)
    assert isinstance(final(x, {"tokens": tokens}), torch.Tensor)
    assert isinstance(final(x, {"tokens": tokens[:, :5], "mask": mask[:, :5]}), torch.Tensor)


def test_final_without_prefix_averages_all_positions():
    torch.manual_seed(0)
    final = UnlockdnaFinal(8, 5, n_targets=2, prefix_tokens=0).eval()
    x = torch.randn(4, 8, 5)
    expected = final.expression(x.transpose(1, 2)).mean(1).view(4, 2, 1)
    torch.testing.assert_close(final(x), expected)
    with pytest.raises(ValueError):
        UnlockdnaFinal(8, 5, prefix_tokens=5)


def test_training_step_reaches_recon_head():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    reads = ["TGCATTTTTTTCACATC" + "".join(rng.choice(list("ACGT"), 80)) + "GGTTACGGCTGTT" for _ in range(8)]
    proc = UnlockdnaProcessing(mask_ratio=0.15)
    codes, lengths = encode_array(reads)
    fields = {"codes": torch.from_numpy(proc.prepare(codes, lengths)["codes"])}
    y = torch.randn(8, 1)
    batch = proc.make_batch(fields, y, torch.zeros(8), train=True, generator=torch.Generator().manual_seed(1))
    assert batch["mask"].any()

    first = UnlockdnaFirst(6, 200, d_model=32, n_tokens=4)
    core = UnlockdnaCore(32, 204, n_layers=1, n_heads=4)
    final = UnlockdnaFinal(32, 204, prefix_tokens=first.prefix_tokens)
    model = nn.ModuleList([first, core, final])
    objective = RegressionObjective("mse", standardize=True)
    objective.fit(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        out, aux = split_output(final(core(first(batch["x"], batch), batch), batch))
        return objective.loss(out, batch["y"]), aux["recon"]

    main, recon = losses()
    (main + recon).backward()
    assert torch.count_nonzero(final.reconstruction.weight.grad) > 0
    assert torch.count_nonzero(first.kmer.weight.grad) > 0
    opt.step()
    opt.zero_grad()
    _, recon_after = losses()
    assert not torch.isclose(recon, recon_after)

    # without masking the reconstruction head gets no gradient at all
    plain = proc.make_batch(fields, y, torch.zeros(8), train=False)
    out = split_output(final(core(first(plain["x"], plain), plain), plain))
    objective.loss(out[0], y).backward()
    assert out[1] == {}
    assert final.reconstruction.weight.grad is None


# ---------------------------------------------------------------------------------------------- recipe


def test_recipe_inverse_sqrt_closed_form():
    recipe = OmegaConf.load(CONF / "recipe" / "unlockdna.yaml")
    lr, warmup = float(recipe.lr), int(recipe.scheduler.warmup_steps)
    param = nn.Parameter(torch.zeros(1))
    opt = instantiate(recipe.optimizer)([param], lr=lr)
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-9
    sched = instantiate(recipe.scheduler)(opt, total_steps=10 * warmup, lr=lr)
    seen = {}
    for step in range(1, 4 * warmup + 1):  # the lr used by optimizer step `step` (counted from 1)
        seen[step] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    peak_scale = lr * math.sqrt(warmup)
    for step in (1, warmup, 4 * warmup):
        closed = peak_scale * min(step**-0.5, step * warmup**-1.5)
        assert seen[step] == pytest.approx(closed, rel=1e-9)
    assert seen[warmup] == pytest.approx(lr) and seen[4 * warmup] == pytest.approx(lr / 2)
    # the paper's form: d_model^-0.5 scale, peak (d_model * warmup)^-0.5 = 3.95e-4
    opt2 = torch.optim.Adam([param], lr=1.0)
    paper = instantiate(recipe.scheduler, warmup_steps=12500, d_model=512)(opt2, total_steps=1, lr=lr)
    assert opt2.param_groups[0]["lr"] == pytest.approx(512**-0.5 * 12500**-1.5)
    for _ in range(12499):
        opt2.step()
        paper.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(3.9528e-4, rel=1e-4)


def test_recipe_mirrors_autosome_keys():
    ours = OmegaConf.load(CONF / "recipe" / "unlockdna.yaml")
    ref = OmegaConf.load(CONF / "recipe" / "autosome.yaml")
    assert list(ours.keys()) == list(ref.keys())
    assert ours.grad_clip == 1.0 and ours.rc_conjoined is False


def test_block_configs_instantiate():
    first = instantiate(OmegaConf.load(CONF / "first" / "unlockdna.yaml").block)(in_channels=6, seq_len=200)
    core = instantiate(OmegaConf.load(CONF / "core" / "unlockdna.yaml").block)(in_channels=256, seq_len=150)
    final_cfg = OmegaConf.load(CONF / "final" / "unlockdna.yaml")
    final = instantiate(final_cfg.block)(in_channels=512, seq_len=232, n_targets=1, prefix_tokens=32)
    assert (count_params(first), count_params(core), count_params(final)) == (135_680, 4_523_520, 3_591)
    objective = instantiate(final_cfg.objective)
    assert isinstance(objective, RegressionObjective) and objective.standardize


# ----------------------------------------------------------------------------- published DREAM-Attn core


def test_published_conv_residual_adds_the_normalised_input():
    from src.blocks.unlockdna import ConvModule

    conv = ConvModule(8, kernel_size=5, dropout=0.0).eval()
    x = torch.randn(2, 7, 8)
    with torch.no_grad():
        original, published = conv(x), conv(x, keep_normalized=True)
        torch.testing.assert_close(published - original, conv.norm(x))


@pytest.mark.parametrize(("positional", "length"), [(True, 150), (False, 232)])
def test_published_core_keeps_the_parameter_count_and_changes_the_output(positional, length):
    kwargs = {"n_layers": 1, "n_heads": 4, "positional_embedding": positional, "dropout": 0.0}
    torch.manual_seed(0)
    original = UnlockdnaCore(64, length, **kwargs).eval()
    torch.manual_seed(0)
    published = UnlockdnaCore(64, length, conv_residual="published", init="pytorch", **kwargs).eval()
    assert count_params(original) == count_params(published)
    published.load_state_dict(original.state_dict())  # same weights: only the residual differs
    x = torch.randn(2, 64, length)
    with torch.no_grad():
        assert not torch.allclose(original(x), published(x))
    assert count_params(UnlockdnaCore(256, 150, n_heads=4, positional_embedding=True, conv_residual="published")) == (
        4_523_520
    )


def test_pytorch_init_is_the_layers_defaults_and_keras_init_is_not():
    keras = UnlockdnaCore(64, 20, n_layers=1, n_heads=4, positional_embedding=True)
    torch_init = UnlockdnaCore(64, 20, n_layers=1, n_heads=4, positional_embedding=True, init="pytorch")
    q_keras, q_torch = keras.layers[0].attn.q, torch_init.layers[0].attn.q
    assert torch.count_nonzero(q_keras.bias) == 0 and torch.count_nonzero(q_torch.bias) > 0  # Keras: zero biases
    assert q_torch.weight.abs().max() <= 1 / math.sqrt(64)  # kaiming_uniform(a=sqrt(5)) bound 1/sqrt(fan_in)
    assert float(keras.position.detach().abs().max()) <= 0.05 and float(
        torch_init.position.detach().std()
    ) == pytest.approx(1.0, abs=0.1)


def test_core_rejects_unknown_variants():
    with pytest.raises(ValueError, match="conv_residual='nope'"):
        UnlockdnaCore(8, 4, n_layers=1, n_heads=2, conv_residual="nope")
    with pytest.raises(ValueError, match="init='tf'"):
        UnlockdnaCore(8, 4, n_layers=1, n_heads=2, init="tf")
