"""Data: readers and their errors, the hash split, encodings, autosome/onehot processing, synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.datamodules.datamodule import EpochBatchSampler, PrixFixeDataModule
from src.datamodules.encoding import decode, encode_array, one_hot, reverse_complement_codes
from src.datamodules.plasmid import LEFT_ADAPTER, RIGHT_ADAPTER, UPSTREAM, flanks_from_plasmid
from src.datamodules.processing.autosome import AutosomeProcessing
from src.datamodules.processing.onehot import OneHotProcessing
from src.datamodules.readers import read_dream, read_sequences, read_table
from src.datamodules.split import assign_folds
from src.datamodules.synthetic import generate, true_activity
from src.errors import DataError
from tests.helpers import shared_file

COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def rc(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


# ---------------------------------------------------------------- encoding
def test_encoding_round_trip_and_reverse_complement() -> None:
    seqs = ["ACGTN", "ggcA", "T"]
    codes, lengths = encode_array(seqs)
    assert codes.dtype == np.uint8 and lengths.tolist() == [5, 4, 1]
    assert [decode(row) for row in codes] == ["ACGTN", "GGCA", "T"]
    rev = reverse_complement_codes(codes, lengths)
    assert [decode(row) for row in rev] == [rc(s.upper()) for s in seqs]
    x = one_hot(torch.from_numpy(codes))
    assert x.shape == (3, 4, 5)
    assert torch.allclose(x[0, :, 4], torch.full((4,), 0.25))  # N
    assert x[2, :, 1:].abs().sum() == 0  # padding is all zeros


# ----------------------------------------------------------------- readers
def test_read_dream_sample(dream_sample: Path) -> None:
    records = read_dream(dream_sample)
    assert len(records) == 6370  # 6,369 newlines; the last line has none
    assert records.targets.shape == (6370, 1)
    assert np.isfinite(records.targets).all()
    assert records.lines[0] == 1 and records.lines[-1] == 6370


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("ACGT\t1.0\nACXT\t2.0\n", 2, "letter 'X'"),
        ("ACGT\t1.0\nACGT\tnan\n", 2, "must be finite"),
        ("ACGT\t1.0\nACGT\n", 2, "missing expression column"),
        ("ACGT\t1.0\nACGT\t\n", 2, "missing expression value"),
        ("ACGT\t1.0\n\t3.0\n", 2, "empty sequence"),
        ("ACGT\t1.0\nACGT\tabc\n", 2, "not a number"),
        ("ACGT\t1.0\tx\n", 1, "2 tab-separated columns"),
    ],
)
def test_read_dream_rejects_bad_lines(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(DataError, match=fragment) as err:
        read_dream(path)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_reader_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_dream(tmp_path / "absent.txt")
    with pytest.raises(DataError, match="file is empty"):
        read_dream(write(tmp_path, "empty.txt", "\n\n"))
    with pytest.raises(DataError, match=r":2: not UTF-8"):
        read_dream(write(tmp_path, "latin.txt", b"ACGT\t1\nAC\xff\t2\n"))


def test_lower_case_is_accepted(tmp_path: Path) -> None:
    records = read_dream(write(tmp_path, "lower.txt", "acgtn\t1.5\nACGTN\t2\n"))
    assert list(records.sequences) == ["ACGTN", "ACGTN"]  # held as case-free codes, decoded in upper case
    assert records.store is not None and records.store.codes.tolist() == [0, 1, 2, 3, 4] * 2


def test_read_table_with_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.tsv", "id\tseq\tvalue\na\tACGT\t1\n")
    records = read_table(path, "seq", ["value"], id_column="id")
    assert records.ids == ["a"] and records.targets.tolist() == [[1.0]]
    with pytest.raises(DataError, match=r"t.tsv:1: missing column 'mean_value'"):
        read_table(path, "seq", ["mean_value"])


def test_prediction_inputs_detect_format(tmp_path: Path) -> None:
    fasta = read_sequences(write(tmp_path, "a.fa", ">s1\nACG\nT\n>s2\nGG\n"))
    plain = read_sequences(write(tmp_path, "a.txt", "ACGT\nGG\n"))
    dream = read_sequences(write(tmp_path, "a.tsv", "ACGT\t\nGG\t3\n"))
    assert fasta.sequences == plain.sequences == dream.sequences == ["ACGT", "GG"]
    assert fasta.ids == ["s1", "s2"]


# ------------------------------------------------------------------- split
def test_split_depends_only_on_sequence_text() -> None:
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(5, 30)))) for _ in range(50)]
    codes, lengths = encode_array(seqs)
    folds = assign_folds(codes, lengths)
    # reversing the order, changing case or padding width does not move any sequence
    codes2, lengths2 = encode_array([s.lower() for s in reversed(seqs)] + ["A" * 200])
    folds2 = assign_folds(codes2, lengths2)[:-1][::-1]
    np.testing.assert_array_equal(folds, folds2)


def test_split_is_identical_across_processings() -> None:
    def split(processing):
        dm = PrixFixeDataModule(lambda: generate(600, seed=3), processing, batch_size=16)
        dm.setup()
        return dm.folds, dm.train_set.targets.numpy(), dm.val_set.targets.numpy()

    from src.datamodules.processing.bhi import BhiProcessing
    from src.datamodules.processing.unlockdna import UnlockdnaProcessing

    a = split(AutosomeProcessing())
    for other in (OneHotProcessing(seq_len=110, on_long="trim"), BhiProcessing(on_long="trim"), UnlockdnaProcessing()):
        b = split(other)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[2], b[2])
    assert 0.05 < len(a[2]) / 600 < 0.16  # about one fold in ten


# -------------------------------------------------------------- processing
def test_autosome_processing_pads_with_plasmid_and_sets_flags() -> None:
    read = LEFT_ADAPTER + "ACGT" * 20 + RIGHT_ADAPTER  # 110 nt
    short = LEFT_ADAPTER + "GGCC" * 15 + RIGHT_ADAPTER  # 90 nt
    codes, lengths = encode_array([read, short])
    proc = AutosomeProcessing()
    prepared = proc.prepare(codes, lengths)["codes"]
    assert prepared.shape == (2, 150)
    expected = (UPSTREAM + read[17:])[-150:]
    assert decode(prepared[0]) == expected
    assert decode(prepared[0])[:40] == UPSTREAM[-57:-17]  # 40 nt of vector before the adapter
    assert decode(prepared[1]) == (UPSTREAM + short[17:])[-150:]

    y = torch.tensor([[12.0], [7.25]])
    fields = {"codes": torch.from_numpy(prepared)}
    batch = proc.make_batch(fields, y, torch.tensor([0, 1]), train=True)
    x = batch["x"]
    assert x.shape == (2, 6, 150)
    assert torch.all(x[0, 4] == 0) and torch.all(x[1, 4] == 1)  # strand flag
    assert torch.all(x[0, 5] == 1) and torch.all(x[1, 5] == 0)  # integer -> singleton
    # view 1 is the reverse complement of the sequence
    fwd = proc.make_batch(fields, y, torch.tensor([1, 0]), train=True)["x"]
    torch.testing.assert_close(x[1, :4], fwd[1, :4].flip(0).flip(1))
    # evaluation: singleton flag off, forward strand
    ev = proc.make_batch(fields, y, torch.tensor([0, 0]), train=False)["x"]
    assert torch.all(ev[:, 5] == 0) and torch.all(ev[:, 4] == 0)


def test_autosome_reverse_complement_is_exact() -> None:
    proc = AutosomeProcessing()
    codes, lengths = encode_array([LEFT_ADAPTER + "ACGTTGCAAN" * 8 + RIGHT_ADAPTER])
    fields = {"codes": torch.from_numpy(proc.prepare(codes, lengths)["codes"])}
    x = proc.make_batch(fields, torch.tensor([[3.0]]), torch.tensor([0]), train=True)["x"]
    x_rc = proc.reverse_complement(x)
    torch.testing.assert_close(proc.reverse_complement(x_rc), x)  # twice = identity
    assert torch.all(x_rc[:, 4] == 1) and torch.all(x_rc[:, 5] == x[:, 5])  # strand flipped, singleton kept
    view1 = proc.make_batch(fields, torch.tensor([[3.0]]), torch.tensor([1]), train=True)["x"]
    torch.testing.assert_close(x_rc, view1)


def test_autosome_rejects_reads_shorter_than_the_adapter() -> None:
    codes, lengths = encode_array(["ACGT" * 10, "ACGTACGT"])
    with pytest.raises(Exception, match="not longer than the 17-nt adapter.*processing.on_short=error") as err:
        AutosomeProcessing().length_policy(lengths)
    assert err.value.row == 1
    padded = AutosomeProcessing(on_short="pad")
    assert padded.length_policy(lengths).padded == 1
    assert decode(padded.prepare(codes, lengths)["codes"][1]) == UPSTREAM[-150:]  # all vector


def test_datamodule_cites_the_line_of_a_length_policy_violation(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", "".join(f"{'ACGT' * 20}\t{i}\n" for i in range(20)) + "ACGT\t1\n")
    dm = PrixFixeDataModule(lambda: read_dream(path), AutosomeProcessing())
    with pytest.raises(DataError, match=r"d.txt:21: sequence of 4 nt"):
        dm.setup()


def test_onehot_processing_trims_and_pads() -> None:
    codes, lengths = encode_array(["ACGTACGT", "ACG"])
    trim = OneHotProcessing(seq_len=5, on_long="trim")
    assert trim.length_policy(lengths).trimmed == 1
    prepared = trim.prepare(codes, lengths)["codes"]
    assert [decode(r) for r in prepared] == ["ACGTA", "ACG"]
    with pytest.raises(Exception, match="longer than processing.seq_len=5"):
        OneHotProcessing(seq_len=5).length_policy(lengths)
    assert OneHotProcessing(seq_len=5, trim=True).on_long == "trim"  # checkpoints saved before on_long


# ----------------------------------------------------------------- sampler
def test_epoch_sampler_is_a_function_of_seed_and_epoch() -> None:
    def epoch(e: int, seed: int = 1) -> list[list[int]]:
        s = EpochBatchSampler(10, 4, True, seed=seed, steps_per_epoch=3)
        s.set_epoch(e)
        return [r.indices.tolist() for r in s]

    assert epoch(2) == epoch(2) and epoch(2) != epoch(1) and epoch(2, seed=2) != epoch(2)
    # no step is dropped: every epoch has exactly steps_per_epoch full batches
    assert all(len(b) == 4 for e in range(5) for b in epoch(e)) and len(epoch(4)) == 3
    # a pass over the data without steps_per_epoch covers distinct items
    s = EpochBatchSampler(10, 4, True, seed=0)
    items = [i for r in s for i in r.indices.tolist()]
    assert len(items) == 8 and len(set(items)) == 8


def test_epoch_sampler_makes_each_permutation_once_and_as_before() -> None:
    """One permutation per pass (not per step: on 12M items it takes a second), equal to ``permutation(n)``."""
    s = EpochBatchSampler(1000, 10, True, seed=3, steps_per_epoch=150)
    requests = list(s)  # 150 steps of 10 span two passes of 100 batches
    for pass_index, first_step in ((0, 0), (1, 100)):
        expected = np.random.default_rng([3, pass_index]).permutation(1000)
        np.testing.assert_array_equal(requests[first_step].indices, expected[:10])
    made = []
    original = s._permutation.__func__

    def counting(self, pass_index: int) -> np.ndarray:
        if self._pass is None or self._pass[0] != pass_index:
            made.append(pass_index)
        return original(self, pass_index)

    s._permutation = counting.__get__(s)
    s.set_epoch(1)
    list(s)
    assert made == [2] and s._pass[1].dtype == np.int32  # pass 1 was made in epoch 0 and is kept


def test_eval_sampler_covers_every_item_once_in_order() -> None:
    s = EpochBatchSampler(10, 4, False)
    assert [i for r in s for i in r.indices.tolist()] == list(range(10))


# --------------------------------------------------------------- synthetic
def test_synthetic_data_is_seeded_and_in_range() -> None:
    a, b, c = generate(300, seed=5), generate(300, seed=5), generate(300, seed=6)
    assert a.sequences == b.sequences and np.array_equal(a.targets, b.targets)
    assert a.sequences != c.sequences
    y = a.targets[:, 0]
    assert y.min() >= 0 and y.max() <= 17
    integer = y == np.round(y)
    assert 0.3 < integer.mean() < 0.7  # singletons and averaged values both present
    assert all(s.startswith(LEFT_ADAPTER) and s.endswith(RIGHT_ADAPTER) for s in a.sequences)


def test_synthetic_function_is_the_planted_one() -> None:
    codes, _ = encode_array(["A" * 80, "A" * 30 + "TTACCCG" + "A" * 43, "A" * 30 + "GCGGGG" + "A" * 44])
    base, reb1, mig1 = true_activity(codes)
    assert reb1 > base > mig1


def test_plasmid_flanks_match_the_challenge_plasmid() -> None:
    path = shared_file("dream", "plasmid.json")
    up, down = flanks_from_plasmid(path)
    assert up == UPSTREAM and down.startswith(RIGHT_ADAPTER)


def test_distributed_eval_ranks_run_equal_batches_covering_every_item() -> None:
    for world in (2, 3):
        ranks = [list(EpochBatchSampler(10, 3, False, rank=r, world_size=world)) for r in range(world)]
        assert len({len(batches) for batches in ranks}) == 1  # collective ops need equal counts
        seen = {i for batches in ranks for b in batches for i in b.indices.tolist()}
        assert seen == set(range(10))
