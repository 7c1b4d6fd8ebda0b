"""SYSU-SAIL-2022 (rank 6) blocks and processing: counts, 3-mer tokens from one-hot, frames, masked-token loss."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.blocks.base import base_codes, count_params, split_output
from src.blocks.sysu import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SysuCore, SysuFinal, SysuFirst, kmer_frames, kmer_mask
from src.datamodules.encoding import decode, encode_array, one_hot
from src.datamodules.plasmid import VECTOR_3P, VECTOR_5P
from src.datamodules.processing import build_processing

CONF = Path(__file__).resolve().parents[1] / "conf"


def load_block(group: str):
    return instantiate(OmegaConf.load(CONF / group / "sysu.yaml").block)


def onehot(seq: str) -> torch.Tensor:
    codes, _ = encode_array([seq])
    return one_hot(torch.from_numpy(codes))


def test_param_counts_own_model() -> None:
    first = load_block("first")(in_channels=4, seq_len=442)
    assert first.segment_lengths == (149, 149, 149)
    core = load_block("core")(in_channels=512, seq_len=447, segment_lengths=first.segment_lengths)
    final = load_block("final")(in_channels=512, seq_len=447, n_targets=1, segment_lengths=first.segment_lengths)
    counts = (count_params(first), count_params(core), count_params(final))
    assert counts == (330_752, 9_457_152, 263_169) and sum(counts) == 10_051_073
    assert count_params(core.layers[0]) == 3_152_384
    assert count_params(SysuFinal(512, 447, mlm=True)) - count_params(final) == 330_370


def test_kmer_tokens_match_a_hand_written_example() -> None:
    # ACGTNAC: codes 0 1 2 3 4 0 1; id = 5 + 25 b1 + 5 b2 + b3; frames start at 0, 1, 2
    codes = base_codes(onehot("ACGTNAC"))
    assert codes.tolist() == [[0, 1, 2, 3, 4, 0, 1]]
    expected = [
        [CLS_ID, 12, 100, SEP_ID],  # ACG = 5 + 0 + 5 + 2, TNA = 5 + 75 + 20 + 0
        [CLS_ID, 43, 106, SEP_ID],  # CGT = 5 + 25 + 10 + 3, NAC = 5 + 100 + 0 + 1
        [CLS_ID, 74, SEP_ID, PAD_ID],  # GTN = 5 + 50 + 15 + 4, then padding to frame 0's length
    ]
    assert kmer_frames(codes).tolist() == [expected]
    assert kmer_frames(base_codes(onehot("AAANNN"))).tolist()[0][0] == [CLS_ID, 5, 129, SEP_ID]
    # a masked base hides the k-mer that starts at it (T at position 3: frame 0, token 2)
    mask = torch.zeros(1, 7, dtype=torch.bool)
    mask[0, 3] = True
    assert kmer_mask(mask).nonzero().tolist() == [[0, 0, 2]]


def test_base_codes_treat_ambiguous_positions_as_n() -> None:
    x = torch.tensor([[[1, 0.25, 0, 1], [0, 0.25, 0, 1], [0, 0.25, 0, 1], [0, 0.25, 0, 1], [1, 1, 1, 1]]]).float()
    assert base_codes(x).tolist() == [[0, 4, 4, 4]]  # A, N at 0.25, zero padding, N at 1 (extra channels ignored)


def test_core_encodes_each_frame_on_its_own() -> None:
    torch.manual_seed(0)
    core = SysuCore(16, 12, n_layers=1, n_heads=2, segment_lengths=(4, 4, 4)).eval()
    x = torch.randn(2, 16, 12)
    separate = torch.cat([core.layers(part.transpose(1, 2)).transpose(1, 2) for part in x.split(4, dim=2)], dim=2)
    torch.testing.assert_close(core(x), separate)
    whole = SysuCore(16, 12, n_layers=1, n_heads=2).eval()
    whole.load_state_dict(core.state_dict())
    assert not torch.allclose(whole(x), separate, atol=1e-4)  # without segments the frames see each other
    uneven = SysuCore(16, 12, n_layers=1, n_heads=2, segment_lengths=(2, 4, 6)).eval()
    assert uneven(x).shape == (2, 16, 12)


def test_final_reads_each_frames_cls_and_averages() -> None:
    torch.manual_seed(0)
    final = SysuFinal(8, 12, segment_lengths=(4, 4, 4)).eval()
    x = torch.randn(2, 8, 12)
    cls = x[:, :, [0, 4, 8]].transpose(1, 2)
    expected = final.head(torch.tanh(final.pooler(cls))).mean(1).view(2, 1, 1)
    torch.testing.assert_close(final(x), expected)
    plain = SysuFinal(8, 12).eval()
    plain.load_state_dict(final.state_dict())
    mean = x.mean(2, keepdim=True).transpose(1, 2)
    torch.testing.assert_close(plain(x), plain.head(torch.tanh(plain.pooler(mean))).mean(1).view(2, 1, 1))


def test_masked_token_loss_trains_the_mlm_head() -> None:
    torch.manual_seed(0)
    proc = build_processing(
        {**OmegaConf.load(CONF / "processing" / "sysu.yaml"), "seq_len": 150, "flank": 20, "mask_ratio": 0.3}
    )
    codes, lengths = encode_array(["TGCATTTTTTTCACATC" + "ACGT" * 20 + "GGTTACGGCTGTT"] * 2)
    fields = {k: torch.from_numpy(v) for k, v in proc.prepare(codes, lengths).items()}
    batch = proc.make_batch(fields, torch.zeros(2, 1), None, True, torch.Generator().manual_seed(0))
    assert batch["mask"].any() and torch.equal(batch["x"], one_hot(fields["codes"], 0.25))  # x itself unmasked
    first = SysuFirst(4, 150, d_model=16)
    core = SysuCore(16, sum(first.segment_lengths), n_layers=1, n_heads=2, segment_lengths=first.segment_lengths)
    final = SysuFinal(16, sum(first.segment_lengths), mlm=True, segment_lengths=first.segment_lengths)
    ids = first.tokens(batch["x"], batch)
    hidden = kmer_mask(batch["mask"])
    assert (ids[hidden] == MASK_ID).float().mean() > 0.6 and (ids[~hidden] != MASK_ID).all()
    out, aux = split_output(final(core(first(batch["x"], batch), batch), batch))
    assert out.shape == (2, 1, 1) and set(aux) == {"mlm"}
    aux["mlm"].backward()
    assert final.mlm[-1].weight.grad.abs().sum() > 0 and first.word.weight.grad.abs().sum() > 0
    # evaluation batches carry no mask: no term, and a layout that is not SYSU's frames gives none either
    assert isinstance(final(torch.randn(2, 16, sum(first.segment_lengths)), {"x": batch["x"]}), torch.Tensor)
    other = SysuFinal(16, 12, mlm=True, segment_lengths=(4, 4, 4))
    assert isinstance(other(torch.randn(2, 16, 12), batch), torch.Tensor)


def test_processing_embeds_reads_in_vector_context() -> None:
    proc = build_processing(OmegaConf.load(CONF / "processing" / "sysu.yaml"))
    assert (proc.seq_len, proc.flank, proc.channels) == (442, 150, 4)
    read = "TGCATTTTTTTCACATC" + "ACGT" * 20 + "GGTTACGGCTGTT"
    row = decode(proc.prepare(*encode_array([read]))["codes"][0])
    assert row == VECTOR_5P[-150:] + read + VECTOR_3P[:150] + "N" * (442 - 300 - 110)
