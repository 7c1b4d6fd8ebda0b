"""NAD (rank 5) blocks, processing and objective: counts, 5-mer ids from one-hot, pyramid levels, deep supervision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.blocks.base import base_codes, count_params, resolve_aux, split_output
from src.blocks.nad import NadCore, NadFinal, NadFirst, SandwichEncoder, kmer_ids, t5_bucket
from src.datamodules.encoding import decode, encode_array, one_hot
from src.datamodules.processing import build_processing

CONF = Path(__file__).resolve().parents[1] / "conf"


def load_block(group: str):
    return instantiate(OmegaConf.load(CONF / group / "nad.yaml").block)


def test_param_counts_own_model_and_team_count() -> None:
    first = load_block("first")(in_channels=4, seq_len=84)
    core = load_block("core")(in_channels=128, seq_len=80)
    assert core.segment_lengths == (10, 20, 40, 80)
    final = load_block("final")(in_channels=256, seq_len=150, n_targets=1, segment_lengths=core.segment_lengths)
    counts = (count_params(first), count_params(core), count_params(final))
    assert counts == (378_240, 3_405_696, 10_523_980) and sum(counts) == 14_307_916
    # the team's count: its GloVe table (1,025 x 128) was frozen, the rest is the same
    assert count_params(first.embedding) == 131_200
    assert sum(counts) - count_params(first.embedding) == 14_176_716
    assert count_params(first.stage) == 247_040
    assert count_params(SandwichEncoder(256, 3)) == 3_156_480 and count_params(SandwichEncoder(256, 2)) == 2_104_576
    assert sum(count_params(level[0]) for level in final.levels) == 840  # the "aa" blocks of 20, 40, 80 positions


def test_kmer_ids_match_a_hand_written_example() -> None:
    codes, _ = encode_array(["ACGTTA", "ACGTNAAAAA", "TTTTT"])
    ids = kmer_ids(base_codes(one_hot(torch.from_numpy(codes))))
    # id = 256 b1 + 64 b2 + 16 b3 + 4 b4 + b5 with A 0, C 1, G 2, T 3; a window with N is <unk> = 1024
    assert ids[0, :2].tolist() == [64 + 32 + 12 + 3, 256 + 128 + 48 + 12 + 0]  # ACGTT, CGTTA
    assert ids[1].tolist() == [1024] * 5 + [0]  # every window over the N, then AAAAA
    assert ids[2, 0].item() == 1023  # TTTTT; the padded columns after it are N: <unk>
    assert ids[2, 1:].eq(1024).all()


def test_first_shrinks_length_by_k_minus_one() -> None:
    first = NadFirst(6, 150, d_model=8)
    assert first(torch.zeros(2, 6, 150)).shape == (2, 8, 146)
    with pytest.raises(ValueError, match="first 4 channels"):
        NadFirst(3, 150)


def test_pyramid_any_length() -> None:
    torch.manual_seed(0)
    core = NadCore(8, 146, widths=(8, 8, 8, 8), fpn_channels=8).eval()
    assert core.segment_lengths == (19, 37, 73, 146)
    assert core(torch.randn(2, 8, 146)).shape == (2, 8, 275)
    # the coarsest level is the 1x1 conv of c5, at the head of the output
    x = torch.randn(1, 8, 146)
    feats = x
    for stage in core.stages:
        feats = stage(feats)
    torch.testing.assert_close(core(x)[:, :, :19], core.lateral[-1](feats))
    flat = NadCore(8, 30, widths=(8, 8, 8), strides=(1, 1, 2), fpn_channels=8)  # a stride-1 level upsamples by 1
    assert flat.segment_lengths == (15, 30, 30) and flat(torch.randn(1, 8, 30)).shape == (1, 8, 75)


def test_t5_buckets() -> None:
    rel = torch.tensor([0, 1, -1, 7, -7, 8, 200, -200])
    assert t5_bucket(rel).tolist() == [0, 17, 1, 23, 7, 24, 31, 15]


def test_final_levels_and_deep_supervision() -> None:
    torch.manual_seed(0)
    kw = {"depths": (1, 1), "position_conv": (False, True), "heads": 2, "dim_head": 4}
    final = NadFinal(8, 6, segment_lengths=(2, 4), deep_supervision=True, **kw)
    x = torch.randn(3, 8, 6)

    def by_hand() -> list[torch.Tensor]:
        parts = (x[:, :, :2], x[:, :, 2:])
        return [
            head(level(part.transpose(1, 2)).mean(1)).view(3, 1, 1)
            for part, level, head in zip(parts, final.levels, final.heads, strict=True)
        ]

    final.eval()
    assert isinstance(final(x, {}), torch.Tensor)  # evaluation: no auxiliary term
    torch.testing.assert_close(final(x), torch.stack(by_hand()).mean(0))
    final.train()  # BatchNorm on batch statistics: the same in both passes
    out, aux = split_output(final(x, {}))
    objective = instantiate(OmegaConf.load(CONF / "final" / "nad.yaml").objective).eval()
    y = torch.tensor([[3.0], [9.0], [14.0]])
    expected = torch.stack([objective.loss(p, y) for p in by_hand()]).mean()
    torch.testing.assert_close(resolve_aux(aux, objective, y)["deep"], expected)
    # without a pyramid layout every head reads the whole sequence
    whole = NadFinal(8, 6, segment_lengths=(6,), **kw)
    assert whole.segment_lengths is None and whole(x).shape == (3, 1, 1)


def test_objective_is_the_teams_target_transform() -> None:
    objective = instantiate(OmegaConf.load(CONF / "final" / "nad.yaml").objective)
    y = torch.tensor([[0.0], [4.0], [8.0], [12.5], [17.0]])
    team = (torch.where(y <= 8, 5 + 3 * y / 8, y) - 5) / 12
    torch.testing.assert_close(objective.transform(y), team)
    torch.testing.assert_close(objective.predict(team.unsqueeze(-1)), y)
    head = team.unsqueeze(-1)
    objective.eval()
    assert objective.loss(head, y) == 0  # no label noise at evaluation
    objective.train()
    torch.manual_seed(0)
    assert objective.loss(head, y) > 0  # Normal(0, 0.05) label noise in training, clipped to [0, 1]


def test_processing_window() -> None:
    proc = build_processing(OmegaConf.load(CONF / "processing" / "nad.yaml"))
    assert (proc.seq_len, proc.start) == (84, 15)
    read = "TGCATTTTTTTCACATC" + "ACGT" * 20 + "GGTTACGGCTGTT"
    short = read[:60]
    rows = proc.prepare(*encode_array([read, short]))["codes"]
    assert decode(rows[0]) == read[15:99]
    assert decode(rows[1]) == short[15:]  # the rest of the window is padding (zeros in the one-hot)


def test_recipe_linear_decay_to_one_percent() -> None:
    recipe = OmegaConf.load(CONF / "recipe" / "nad.yaml")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = instantiate(recipe.optimizer)([param], lr=recipe.lr)
    assert opt.defaults["weight_decay"] == 0.05
    sched = instantiate(recipe.scheduler)(opt, total_steps=101, lr=recipe.lr)
    seen = []
    for _ in range(101):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(2e-4) and seen[50] == pytest.approx(2e-4 * (1 + 0.5 * (0.01 - 1)))
    assert seen[100] == pytest.approx(2e-6)
