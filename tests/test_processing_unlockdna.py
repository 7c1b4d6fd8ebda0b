"""Unlock_DNA processing: adapter stripping, centre padding, both strands, masking, reverse complement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from src.datamodules.encoding import N, decode, encode_array
from src.datamodules.plasmid import LEFT_ADAPTER, RIGHT_ADAPTER
from src.datamodules.processing import build_processing
from src.datamodules.processing.unlockdna import M, UnlockdnaProcessing, center_offsets
from src.errors import ConfigError, LengthPolicyError

CONF = Path(__file__).resolve().parents[1] / "conf"
_RC = str.maketrans("ACGTN", "TGCAN")


def _rc(seq: str) -> str:
    return seq.translate(_RC)[::-1]


def _bodies(rng: np.random.Generator, lengths: list[int]) -> list[str]:
    return ["".join(rng.choice(list("ACGTN"), size=n, p=[0.24, 0.24, 0.24, 0.24, 0.04])) for n in lengths]


def _prepare(proc: UnlockdnaProcessing, reads: list[str]) -> np.ndarray:
    codes, lengths = encode_array(reads)
    return proc.prepare(codes, lengths)["codes"]


def _batch(proc, codes, train=True, seed=0):
    fields = {"codes": torch.from_numpy(codes)}
    y = torch.zeros(len(codes), 1)
    gen = torch.Generator().manual_seed(seed)
    return proc.make_batch(fields, y, torch.zeros(len(codes)), train=train, generator=gen)


def test_strip_center_pad_and_reverse_complement():
    rng = np.random.default_rng(0)
    bodies = _bodies(rng, [80, 81, 99, 100, 1, 57])
    reads = [LEFT_ADAPTER + b + RIGHT_ADAPTER for b in bodies]
    out = _prepare(UnlockdnaProcessing(), reads)
    assert out.shape == (6, 200) and out.dtype == np.uint8
    for row, body in zip(out, bodies):
        first, second = decode(row[:100]), decode(row[100:])
        assert first == body.center(100, "N")  # adapters gone, Python str.center padding
        assert second == _rc(first)  # positions 100-199: reverse complement of the first half
    # even width: an odd margin puts the extra N on the right (3')
    assert decode(out[1, :100]).startswith("N" * 9) and decode(out[1, :100]).endswith("N" * 10)


@pytest.mark.parametrize("width", [7, 8])
def test_center_offsets_match_str_center(width):
    for n in range(1, width + 1):
        s = "A" * n
        assert center_offsets(np.array([n]), width)[0] == len(s.center(width, "N")) - len(
            s.center(width, "N").lstrip("N")
        )
    proc = UnlockdnaProcessing(seq_len=2 * width, strip_5p=0, strip_3p=0, half_len=width)
    bodies = _bodies(np.random.default_rng(1), list(range(1, width + 1)))
    bodies = ["A" + b[1:-1] + "C" if len(b) > 1 else "G" for b in bodies]  # no N at the ends
    out = _prepare(proc, bodies)
    for row, body in zip(out, bodies):
        assert decode(row[:width]) == body.center(width, "N")


def test_long_reads_error_drop_or_trim():
    rng = np.random.default_rng(2)
    bodies = _bodies(rng, [80, 103])
    reads = [LEFT_ADAPTER + b + RIGHT_ADAPTER for b in bodies]
    _, lengths = encode_array(reads)
    with pytest.raises(LengthPolicyError) as err:
        UnlockdnaProcessing().length_policy(lengths)
    assert err.value.row == 1
    assert "processing.on_long" in str(err.value) and "103 nt" in str(err.value)
    dropped = UnlockdnaProcessing(on_long="drop").length_policy(lengths)
    assert dropped.keep.tolist() == [True, False] and dropped.dropped_long == 1
    out = _prepare(UnlockdnaProcessing(on_long="trim"), reads)
    # centre crop: 3 extra letters -> 1 cut at the 5' end, 2 at the 3' end
    assert decode(out[1, :100]) == bodies[1][1:101]
    assert decode(out[1, 100:]) == _rc(bodies[1][1:101])


def test_short_reads_and_bad_config():
    _, lengths = encode_array([LEFT_ADAPTER + "ACGT" + RIGHT_ADAPTER, LEFT_ADAPTER + RIGHT_ADAPTER])
    with pytest.raises(LengthPolicyError) as err:
        UnlockdnaProcessing().length_policy(lengths)
    assert err.value.row == 1
    with pytest.raises(ConfigError, match="processing.on_long must be one of error, trim, drop"):
        UnlockdnaProcessing(on_long="pad")
    with pytest.raises(ConfigError, match="processing.on_short"):
        UnlockdnaProcessing(on_short="trim")
    with pytest.raises(ConfigError):
        UnlockdnaProcessing(seq_len=150)


def test_make_batch_without_masking():
    rng = np.random.default_rng(3)
    reads = [LEFT_ADAPTER + b + RIGHT_ADAPTER for b in _bodies(rng, [80] * 4)]
    codes = _prepare(UnlockdnaProcessing(mask_ratio=0.0), reads)
    for proc, train in ((UnlockdnaProcessing(mask_ratio=0.0), True), (UnlockdnaProcessing(mask_ratio=0.2), False)):
        batch = _batch(proc, codes, train=train)
        assert set(batch) == {"x", "y"}
        x = batch["x"]
        assert x.shape == (4, 6, 200) and x.dtype == torch.float32
        assert torch.equal(x.argmax(1), torch.from_numpy(codes).long())
        assert x.sum(1).eq(1).all() and x[:, M].eq(0).all()


def test_masking_ratio_never_n_and_seeded():
    rng = np.random.default_rng(4)
    reads = [LEFT_ADAPTER + b + RIGHT_ADAPTER for b in _bodies(rng, rng.integers(60, 101, 200).tolist())]
    proc = UnlockdnaProcessing(mask_ratio=0.15)
    codes = _prepare(proc, reads)
    batch = _batch(proc, codes, seed=7)
    assert set(batch) == {"x", "y", "tokens", "mask"}
    tokens, mask, x = batch["tokens"], batch["mask"], batch["x"]
    assert tokens.dtype == torch.long and mask.dtype == torch.bool and mask.shape == (200, 200)
    assert torch.equal(tokens, torch.from_numpy(codes).long())  # original codes, unmasked
    bases = tokens < N
    assert not mask[~bases].any()  # N (the padding) is never masked
    ratio = mask.sum().item() / bases.sum().item()
    assert abs(ratio - 0.15) < 0.01
    # masked positions show M, the others their own base
    shown = x.argmax(1)
    assert shown[mask].eq(M).all()
    assert torch.equal(shown[~mask], tokens[~mask])
    # same seed, same mask; another seed, another mask
    assert torch.equal(_batch(proc, codes, seed=7)["mask"], mask)
    assert not torch.equal(_batch(proc, codes, seed=8)["mask"], mask)


def test_reverse_complement():
    rng = np.random.default_rng(5)
    reads = [LEFT_ADAPTER + b + RIGHT_ADAPTER for b in _bodies(rng, [70, 80, 95])]
    proc = UnlockdnaProcessing(mask_ratio=0.3)
    codes = _prepare(proc, reads)
    x = _batch(proc, codes, train=False)["x"]
    # both strands side by side: the input is its own reverse complement
    assert torch.equal(proc.reverse_complement(x), x)
    # on a masked input: A/C/G/T complemented and reversed, N and M only reversed; an involution
    xm = _batch(proc, codes, train=True)["x"]
    rc = proc.reverse_complement(xm)
    assert not torch.equal(rc, xm)
    assert torch.equal(proc.reverse_complement(rc), xm)
    assert torch.equal(rc[:, M], xm[:, M].flip(1)) and torch.equal(rc[:, N], xm[:, N].flip(1))
    assert torch.equal(rc[:, 0], xm[:, 3].flip(1))  # A <- T reversed
    assert proc.rc_average is False and proc.train_views == 1


def test_processing_config():
    cfg = OmegaConf.load(CONF / "processing" / "unlockdna.yaml")
    proc = build_processing(cfg)
    assert isinstance(proc, UnlockdnaProcessing)
    assert (proc.name, proc.channels, proc.seq_len) == (cfg.name, 6, 200)
    assert (proc.strip_5p, proc.strip_3p, proc.half_len) == (17, 13, 100)
