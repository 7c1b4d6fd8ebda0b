"""predict_sequences / predict.py: order, input formats, reverse-complement averaging, errors, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from src.checkpoint import load_module
from src.datamodules.encoding import encode_array
from src.datamodules.processing.base import Processing
from src.datamodules.processing.onehot import OneHotProcessing
from src.datamodules.readers import read_sequences
from src.datamodules.table_formats import TableFormat, data_set_tables
from src.entry import run_task
from src.errors import ConfigError, DataError
from src.evaluation.prediction_file import prediction_columns
from src.inference import predict_sequences
from src.predict_task import predict, record_keys
from tests.helpers import ROOT, TINY_AUTOSOME, TINY_ONEHOT_RESNET, compose_cfg, shared_file, tiny_run, train_tiny


def random_seqs(n: int, length: int = 110, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    return [letters[row].tobytes().decode() for row in rng.integers(0, 4, size=(n, length))]


def rc_string(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


@pytest.fixture(scope="module")
def onehot_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("onehot") / "run", TINY_ONEHOT_RESNET)


@pytest.fixture(scope="module")
def autosome_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("autosome") / "run", TINY_AUTOSOME)


@pytest.fixture(scope="module")
def seqs() -> list[str]:
    # mixed lengths around the DREAM read length, plus an N and lower case
    out = random_seqs(37, 110, seed=1) + random_seqs(3, 104, seed=2)
    out[5] = out[5][:50] + "N" + out[5][51:]
    out[7] = out[7].lower()
    return out


def test_order_and_count_follow_the_input(onehot_ckpt: Path, seqs: list[str]) -> None:
    module = load_module(onehot_ckpt)
    preds = predict_sequences(module, seqs, batch_size=512, progress=False)
    assert preds.shape == (len(seqs), 1) and preds.dtype == np.float32
    assert np.isfinite(preds).all()
    perm = np.random.default_rng(0).permutation(len(seqs))
    shuffled = predict_sequences(module, [seqs[i] for i in perm], batch_size=7, progress=False)
    np.testing.assert_allclose(shuffled, preds[perm], rtol=1e-5, atol=1e-5)
    assert len(np.unique(preds.round(6))) > 1  # not a constant output: the order check means something


def test_input_formats_give_identical_predictions(onehot_ckpt: Path, seqs: list[str], tmp_path: Path) -> None:
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i} id\n{s[:60]}\n{s[60:]}\n" for i, s in enumerate(seqs)))
    dream = tmp_path / "in.txt"
    dream.write_text("".join(f"{s}\t{i % 17}.5\n" for i, s in enumerate(seqs)))
    plain = tmp_path / "in.seq"
    plain.write_text("\n".join(seqs) + "\n")
    tables = []
    for path in (fasta, dream, plain):
        out = tmp_path / f"{path.name}.tsv"
        cfg = OmegaConf.create(
            {"ckpt_path": str(onehot_ckpt), "input": str(path), "output": str(out), "device": "cpu", "progress": False}
        )
        assert predict(cfg)["n"] == len(seqs)
        lines = out.read_text().splitlines()
        assert lines[0].split("\t")[1:] == ["sequence", "prediction"]
        assert [ln.split("\t")[1] for ln in lines[1:]] == seqs
        tables.append(np.array([float(ln.split("\t")[2]) for ln in lines[1:]]))
    np.testing.assert_array_equal(tables[0], tables[1])
    np.testing.assert_array_equal(tables[0], tables[2])
    # the TSV holds the float32 predictions exactly
    module = load_module(onehot_ckpt)
    direct = predict_sequences(module, read_sequences(plain).sequences, progress=False)[:, 0]
    np.testing.assert_array_equal(tables[2], direct.astype(np.float64))


def test_rc_average_autosome_matches_manual_two_pass(autosome_ckpt: Path, seqs: list[str]) -> None:
    module = load_module(autosome_ckpt)
    proc = module.processing
    assert proc.rc_average  # autosome averages both strands by default
    codes, lengths = encode_array(seqs)
    fields = {k: torch.from_numpy(v) for k, v in proc.prepare(codes, lengths).items()}
    batch = proc.make_batch(fields, torch.zeros(len(seqs), 1), torch.zeros(len(seqs), dtype=torch.long), False)
    x = batch["x"]
    assert x.shape == (len(seqs), 6, 150)
    assert (x[:, 4] == 0).all() and (x[:, 5] == 0).all()  # forward strand, singleton flag 0 at evaluation
    x_rc = proc.reverse_complement(x)
    assert (x_rc[:, 4] == 1).all() and (x_rc[:, 5] == 0).all()
    with torch.inference_mode():
        forward = module(x).numpy()
        reverse = module(x_rc).numpy()
    default = predict_sequences(module, seqs, batch_size=16, progress=False)
    forced_off = predict_sequences(module, seqs, batch_size=16, rc_average=False, progress=False)
    np.testing.assert_allclose(forced_off, forward, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(default, 0.5 * (forward + reverse), rtol=1e-5, atol=1e-5)
    assert not np.allclose(forward, reverse)  # the strand flag / strand matter, so averaging is visible


def test_rc_average_onehot_equals_mean_with_rc_strings(onehot_ckpt: Path) -> None:
    module = load_module(onehot_ckpt)
    seqs = random_seqs(20, 110, seed=5)  # exactly seq_len: the RC string encodes to the flipped one-hot
    assert not module.processing.rc_average
    default = predict_sequences(module, seqs, progress=False)
    forward = predict_sequences(module, seqs, rc_average=False, progress=False)
    np.testing.assert_array_equal(default, forward)
    reverse = predict_sequences(module, [rc_string(s) for s in seqs], rc_average=False, progress=False)
    averaged = predict_sequences(module, seqs, rc_average=True, progress=False)
    np.testing.assert_allclose(averaged, 0.5 * (forward + reverse), rtol=1e-5, atol=1e-5)


class _NoRC(OneHotProcessing):
    reverse_complement = Processing.reverse_complement


def test_rc_average_without_rc_encoding_is_a_config_error(onehot_ckpt: Path) -> None:
    module = load_module(onehot_ckpt)
    module.processing = _NoRC(seq_len=110)
    with pytest.raises(ConfigError, match="rc_average"):
        predict_sequences(module, random_seqs(3), rc_average=True, progress=False)
    assert predict_sequences(module, random_seqs(3), progress=False).shape == (3, 1)  # default: off


def test_errors_cite_file_and_line(autosome_ckpt: Path) -> None:
    module = load_module(autosome_ckpt)
    seqs = random_seqs(4)
    with pytest.raises(DataError, match=r"in\.txt:12: .*adapter"):
        predict_sequences(module, [*seqs, "ACGTACGT"], progress=False, path="in.txt", lines=np.arange(8, 13))
    with pytest.raises(DataError, match=r"<sequences>:2: letter 'X'"):
        predict_sequences(module, [seqs[0], "ACGX" + seqs[1]], progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        predict_sequences(module, seqs, batch_size=0, progress=False)


def test_module_state_is_restored(onehot_ckpt: Path) -> None:
    module = load_module(onehot_ckpt)
    module.train()
    predict_sequences(module, random_seqs(3), device="cpu", progress=False)
    assert module.training
    assert next(module.parameters()).device.type == "cpu"


def test_prediction_columns(onehot_ckpt: Path) -> None:
    module = load_module(onehot_ckpt)
    assert prediction_columns(module, 1) == ["prediction"]
    assert prediction_columns(module, 2) == ["prediction_t0", "prediction_t1"]


def test_bad_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_module(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="is not a readable checkpoint"):
        load_module(junk)


def test_missing_ckpt_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seq_file = tmp_path / "in.txt"
    seq_file.write_text("\n".join(random_seqs(2)) + "\n")
    cfg = OmegaConf.create(
        {"ckpt_path": str(tmp_path / "nope.ckpt"), "input": str(seq_file), "output": str(tmp_path / "o.tsv")}
    )
    with pytest.raises(SystemExit) as exit_info:
        run_task(predict, cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ckpt_path:") and "nope.ckpt does not exist" in err
    assert "\n" not in err and not (tmp_path / "o.tsv").exists()


def test_bad_input_exits_2_naming_file_and_line(
    onehot_ckpt: Path, seqs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{seqs[0]}\n{seqs[1]}\n{seqs[2][:10]}X{seqs[2][11:]}\n")
    out = tmp_path / "bad.tsv"
    cfg = OmegaConf.create({"ckpt_path": str(onehot_ckpt), "input": str(bad), "output": str(out), "device": "cpu"})
    with pytest.raises(SystemExit) as exit_info:
        run_task(predict, cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}:3:" in err[0] and "'X'" in err[0]
    assert not out.exists()


def test_predict_cli(onehot_ckpt: Path, seqs: list[str], tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("\n".join(seqs) + "\n")
    out = tmp_path / "sub" / "preds.tsv"
    args = [f"ckpt_path={onehot_ckpt}", f"input={good}", f"output={out}", "device=cpu", "progress=false"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    rows = out.read_text().splitlines()
    assert rows[0] == "line\tsequence\tprediction" and len(rows) == len(seqs) + 1
    assert [r.split("\t")[1] for r in rows[1:]] == seqs
    assert not list(tmp_path.glob("**/.hydra")) and not (ROOT / ".hydra").exists()  # no stray Hydra folders


# ----------------------------------------------------------------------------- ids and orientation

MPRA_LEN = 230  # the lentiMPRA read length, so that the tiny model also predicts the shared sample's table
TINY_RESNET_BLOCKS = [
    "first=resnet",
    "core=resnet",
    "final=resnet",
    "core.block.depths=[1,1,1,1]",
    "core.block.widths=[8,8,8,8]",
    "first.block.out_channels=8",
]


def write_lentimpra(path: Path, n: int, seed: int = 0) -> Path:
    """A lentiMPRA-format table (seq_id, seq, mean_value, fold); odd rows are ``_Reversed:`` reads."""
    rng = np.random.default_rng(seed)
    rows = ["seq_id\tseq\tmean_value\tfold"]
    for i, seq in enumerate(random_seqs(n, MPRA_LEN, seed)):
        rows.append(f"seq{i}_{'Reversed:' if i % 2 else 'F'}\t{seq}\t{rng.normal():.3f}\t{i % 3}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def mpra_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on a lentiMPRA table (processing=mpra: one-hot + the orientation flag)."""
    from src.train_task import train

    folder = tmp_path_factory.mktemp("mpra")
    table = write_lentimpra(folder / "all.tsv", 120)
    data = ["data=human_mpra", f"data.path={table}", "data.test_fold=0", "data.val_fold=1"]
    summary = train(compose_cfg([*tiny_run(data=False), *data, *TINY_RESNET_BLOCKS], run_dir=folder / "run"))
    return Path(summary["last_checkpoint"])


def _predict_file(ckpt: Path, path: Path, out: Path, **extra: object) -> list[list[str]]:
    values = {"ckpt_path": str(ckpt), "input": str(path), "output": str(out), "device": "cpu", "progress": False}
    predict(OmegaConf.create(values | extra))
    return [row.split("\t") for row in out.read_text().splitlines()]


def test_fasta_ids_and_plain_line_numbers_round_trip(onehot_ckpt: Path, seqs: list[str], tmp_path: Path) -> None:
    direct = predict_sequences(load_module(onehot_ckpt), seqs, progress=False)[:, 0]
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">read{i} sample {i}\n{s[:50]}\n{s[50:]}\n" for i, s in enumerate(seqs)))
    rows = _predict_file(onehot_ckpt, fasta, tmp_path / "fa.tsv")
    assert rows[0] == ["id", "sequence", "prediction"]
    assert [r[0] for r in rows[1:]] == [f"read{i}" for i in range(len(seqs))]  # the id: the header's first word
    assert [r[1] for r in rows[1:]] == seqs
    np.testing.assert_array_equal([float(r[2]) for r in rows[1:]], direct)
    # plain lines (blank lines in between) keep their own line numbers
    plain = tmp_path / "in.seq"
    plain.write_text("\n" + "\n\n".join(seqs) + "\n")
    rows = _predict_file(onehot_ckpt, plain, tmp_path / "plain.tsv")
    assert rows[0] == ["line", "sequence", "prediction"]
    assert [int(r[0]) for r in rows[1:]] == list(range(2, 2 * len(seqs) + 1, 2))
    lines = plain.read_text().split("\n")
    assert all(lines[int(r[0]) - 1] == r[1] for r in rows[1:])


def test_data_set_tables_are_the_data_configs_readers(tmp_path: Path) -> None:
    tables = {t.name: t for t in data_set_tables()}
    assert set(tables) == {"human_mpra", "drosophila_starr"}
    for name, table in tables.items():
        reader = compose_cfg([f"data={name}", "data.path=unused"]).data.source.reader
        assert (table.sequence_column, table.id_column) == (reader.sequence_column, reader.id_column)
    starr = tmp_path / "starr.txt"
    starr.write_text(
        "seqnames\tID\tset\tSequence\tDev_log2_enrichment\tHk_log2_enrichment\n"
        "chr2L\tchr2L_1_9_-_peak\tTest\tACGTACGT\t0.5\t0.1\n"
        "chr2L\tchr2L_2_10_+_peak\tTest\tGGCCAATT\t1.5\t-0.1\n"
    )
    records = read_sequences(starr, list(tables.values()))
    assert list(records.sequences) == ["ACGTACGT", "GGCCAATT"] and records.lines.tolist() == [2, 3]
    assert records.ids == ["chr2L_1_9_-_peak", "chr2L_2_10_+_peak"]
    # a table without its id column is still read (the orientation must then be given)
    no_ids = tmp_path / "no_ids.txt"
    no_ids.write_text("Sequence\tnote\nACGT\tx\n")
    assert read_sequences(no_ids, [TableFormat("t", "Sequence", "ID")]).ids is None


def test_table_ids_are_kept_whole_and_fasta_ids_are_the_headers_first_word(tmp_path: Path) -> None:
    table = tmp_path / "t.txt"
    table.write_text("seq_id\tseq\nelement 1_F\tACGT\n")
    records = read_sequences(table, data_set_tables())
    assert records.kind == "human_mpra table" and record_keys(records) == ("id", ["element 1_F"])
    fasta = tmp_path / "t.fa"
    fasta.write_text(">element 1_F\nACGT\n")
    assert record_keys(read_sequences(fasta, data_set_tables())) == ("id", ["element"])


def test_data_set_table_ids_decide_the_orientation(mpra_ckpt: Path, tmp_path: Path) -> None:
    table = write_lentimpra(tmp_path / "test.txt", 12, seed=3)
    rows = _predict_file(mpra_ckpt, table, tmp_path / "out.tsv")
    source = [line.split("\t") for line in table.read_text().splitlines()[1:]]
    assert rows[0] == ["id", "sequence", "prediction"]
    assert [r[:2] for r in rows[1:]] == [s[:2] for s in source]
    module = load_module(mpra_ckpt)
    seqs = [s[1] for s in source]
    forward = predict_sequences(module, seqs, progress=False, orientation="forward")[:, 0]
    reverse = predict_sequences(module, seqs, progress=False, orientation="reverse")[:, 0]
    assert not np.allclose(forward, reverse, rtol=0, atol=1e-6)  # the flag matters, so the check can fail
    expected = np.where(["_Reversed:" in s[0] for s in source], reverse, forward)
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], expected, rtol=1e-6, atol=1e-6)


def test_shared_lentimpra_table_is_read_as_in_training(mpra_ckpt: Path, tmp_path: Path) -> None:
    table = shared_file("human_mpra", "sample_test.txt")
    rows = _predict_file(mpra_ckpt, table, tmp_path / "out.tsv")
    source = [line.split("\t") for line in table.read_text().splitlines()[1:]]
    assert len(rows) == len(source) + 1 and [r[0] for r in rows[1:]] == [s[0] for s in source]
    row = next(i for i, s in enumerate(source) if "_Reversed:" in s[0])
    module = load_module(mpra_ckpt)
    reverse = predict_sequences(module, [source[row][1]], progress=False, orientation="reverse")[0, 0]
    forward = predict_sequences(module, [source[row][1]], progress=False, orientation="forward")[0, 0]
    assert float(rows[row + 1][2]) == pytest.approx(float(reverse), abs=1e-6)
    assert float(rows[row + 1][2]) != pytest.approx(float(forward), abs=1e-6)


def test_plain_sequences_need_the_orientation(
    mpra_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seqs = random_seqs(5, MPRA_LEN, seed=4)
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(seqs) + "\n")
    out = tmp_path / "out.tsv"
    cfg = {"ckpt_path": str(mpra_ckpt), "input": str(plain), "output": str(out), "device": "cpu", "progress": False}
    with pytest.raises(SystemExit) as exit_info:
        run_task(predict, OmegaConf.create(cfg))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: orientation:") and "forward, reverse or both" in err
    assert not out.exists()
    module = load_module(mpra_ckpt)
    forward = predict_sequences(module, seqs, progress=False, orientation="forward")[:, 0]
    reverse = predict_sequences(module, seqs, progress=False, orientation="reverse")[:, 0]
    rows = _predict_file(mpra_ckpt, plain, out, orientation="both")
    assert rows[0] == ["line", "sequence", "prediction_forward", "prediction_reverse"]
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], forward, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose([float(r[3]) for r in rows[1:]], reverse, rtol=1e-6, atol=1e-6)
    rows = _predict_file(mpra_ckpt, plain, out, orientation="reverse")
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], reverse, rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError, match="orientation must be one of forward, reverse, both"):
        _predict_file(mpra_ckpt, plain, out, orientation="sideways")


def test_orientation_needs_a_model_with_an_orientation_channel(onehot_ckpt: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(random_seqs(3)) + "\n")
    with pytest.raises(ConfigError, match="orientation=reverse: processing 'onehot' has no orientation channel"):
        _predict_file(onehot_ckpt, plain, tmp_path / "out.tsv", orientation="reverse")
