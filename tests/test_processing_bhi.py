"""BHI processing: 3' trimming, random real-vector padding, evaluation placement, reverse complement."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.datamodules.encoding import PAD, decode, encode_array, one_hot
from src.datamodules.plasmid import VECTOR_3P, VECTOR_5P
from src.datamodules.processing.bhi import BhiProcessing
from src.errors import LengthPolicyError

CONF = Path(__file__).resolve().parents[1] / "conf"
RC = str.maketrans("ACGTN", "TGCAN")


def random_seq(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGT") for _ in range(n))


def revcomp(seq: str) -> str:
    return seq.translate(RC)[::-1]


def fields_for(proc: BhiProcessing, seqs: list[str]) -> dict[str, torch.Tensor]:
    codes, lengths = encode_array(seqs)
    prepared = proc.prepare(codes, lengths)
    return {k: torch.from_numpy(v) for k, v in prepared.items()}


def windows(proc: BhiProcessing, seqs: list[str], train: bool, seed: int | None = 0) -> list[str]:
    """Decoded padded windows of ``seqs``."""
    fields = fields_for(proc, seqs)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    codes = proc.pad_codes(fields["codes"], fields["lengths"], train, gen)
    return [decode(row) for row in codes.numpy()]


def test_config_matches_defaults() -> None:
    cfg = OmegaConf.load(CONF / "processing" / "bhi.yaml")
    assert cfg.pop("name") == "bhi"  # the group's display name; the datamodule drops it before instantiating
    proc = instantiate(cfg)
    assert isinstance(proc, BhiProcessing)
    assert (proc.name, proc.channels, proc.seq_len, proc.n_value, proc.eval_pad) == ("bhi", 4, 110, 0.0, "both")
    assert proc.rc_average and proc.train_views == 1


def test_prepare_trims_3p_end() -> None:
    proc = BhiProcessing()
    long, short = random_seq(120, 1), random_seq(100, 2)
    codes, lengths = encode_array([long, short])
    prepared = proc.prepare(codes, lengths)
    assert prepared["codes"].shape == (2, 110) and prepared["codes"].dtype == np.uint8
    assert decode(prepared["codes"][0]) == long[:110]
    assert decode(prepared["codes"][1]) == short
    assert (prepared["codes"][1, 100:] == PAD).all()
    assert prepared["lengths"].tolist() == [110, 100]
    # a trimmed read is never padded
    assert windows(proc, [long], train=True) == [long[:110]]


def test_length_policy_rejects_empty_and_long() -> None:
    _, lengths = encode_array(["ACGT", ""])
    with pytest.raises(LengthPolicyError) as err:
        BhiProcessing().length_policy(lengths)
    assert err.value.row == 1
    _, lengths = encode_array(["ACGT", random_seq(111, 3)])
    with pytest.raises(LengthPolicyError, match="111 nt is longer than processing.seq_len=110"):
        BhiProcessing().length_policy(lengths)
    assert BhiProcessing(on_long="trim").length_policy(lengths).trimmed == 1


def test_padding_is_real_vector_and_read_intact() -> None:
    proc = BhiProcessing()
    read = random_seq(100, 3)
    seen = set()
    for window in windows(proc, [read] * 300, train=True, seed=7):
        assert len(window) == 110
        left = window.find(read)
        assert left >= 0, "read must appear intact inside the window"
        assert window[:left] == (VECTOR_5P[-left:] if left else "")
        assert window[left + 100 :] == VECTOR_3P[: 10 - left]
        seen.add(left)
    # right only, split (right >= left), left only
    assert seen == {0, 5, 10}
    assert VECTOR_5P.endswith("CGATTCGAAC") and VECTOR_3P.startswith("TCTTAATTAA")


def test_placement_frequencies() -> None:
    proc = BhiProcessing()
    pad = torch.full((60_000,), 10)
    left = proc.left_pad(pad, train=True, generator=torch.Generator().manual_seed(123))
    freq = [(left == v).float().mean().item() for v in (0, 10, 5)]  # right, left, split
    expected = (0.333, 0.667 * 0.334, 0.667 * 0.666)
    assert freq == pytest.approx(expected, abs=0.012)


def test_placement_redrawn_per_draw_and_seeded() -> None:
    proc = BhiProcessing()
    fields = fields_for(proc, [random_seq(100, s) for s in range(64)])

    def draw(gen: torch.Generator) -> torch.Tensor:
        return proc.make_batch(fields, torch.zeros(64, 1), torch.zeros(64), train=True, generator=gen)["x"]

    same_a, same_b = draw(torch.Generator().manual_seed(5)), draw(torch.Generator().manual_seed(5))
    assert torch.equal(same_a, same_b)
    assert not torch.equal(same_a, draw(torch.Generator().manual_seed(6)))
    # one generator, two draws of the same samples: the placement is re-drawn
    gen = torch.Generator().manual_seed(5)
    assert not torch.equal(draw(gen), draw(gen))


def test_eval_placement_is_deterministic() -> None:
    read = random_seq(97, 4)  # pad 13: both -> left 6, right 7
    both = windows(BhiProcessing(), [read], train=False, seed=None)[0]
    assert both == VECTOR_5P[-6:] + read + VECTOR_3P[:7]
    assert windows(BhiProcessing(), [read], train=False, seed=1) == [both]
    assert windows(BhiProcessing(), [read], train=False, seed=2) == [both]
    assert windows(BhiProcessing(eval_pad="right"), [read], train=False) == [read + VECTOR_3P[:13]]
    assert windows(BhiProcessing(eval_pad="left"), [read], train=False) == [VECTOR_5P[-13:] + read]


def test_full_length_read_unchanged() -> None:
    proc = BhiProcessing()
    read = random_seq(110, 5)
    assert set(windows(proc, [read] * 50, train=True, seed=3)) == {read}
    batch = proc.make_batch(fields_for(proc, [read]), torch.ones(1, 1), torch.zeros(1), train=True)
    codes, _ = encode_array([read])
    assert torch.equal(batch["x"], one_hot(torch.from_numpy(codes), 0.0))


def test_make_batch_onehot_and_n() -> None:
    proc = BhiProcessing()
    read = "N" + random_seq(109, 6)
    y = torch.tensor([[3.5]])
    batch = proc.make_batch(fields_for(proc, [read]), y, torch.zeros(1), train=False)
    x = batch["x"]
    assert x.shape == (1, 4, 110) and x.dtype == torch.float32
    assert torch.equal(batch["y"], y)
    assert (x[0, :, 0] == 0).all()  # N is all zeros (BHI)
    assert (x[0, :, 1:].sum(0) == 1).all()
    quarter = BhiProcessing(n_value=0.25).make_batch(fields_for(proc, [read]), y, torch.zeros(1), train=False)
    assert quarter["x"][0, :, 0].tolist() == [0.25] * 4


def test_reverse_complement() -> None:
    proc = BhiProcessing()
    reads = [random_seq(110, 7), random_seq(90, 8)]
    x = proc.make_batch(fields_for(proc, reads), torch.zeros(2, 1), torch.zeros(2), train=False)["x"]
    rc = proc.reverse_complement(x)
    assert torch.equal(proc.reverse_complement(rc), x)
    padded = windows(proc, reads, train=False)
    codes, _ = encode_array([revcomp(s) for s in padded])
    assert torch.equal(rc, one_hot(torch.from_numpy(codes), 0.0))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="eval_pad"):
        BhiProcessing(eval_pad="middle")
    with pytest.raises(ValueError, match="seq_len"):
        BhiProcessing(seq_len=500)
