"""Full-scale data path: vectorised reader, gzip, the binary cache, the split, validation subsets.

The line-by-line reader (:func:`read_dream_lines`) is the reference: the vectorised reader must give
the same arrays and, for bad input, the same ``file:line: problem`` message, also deep in a file that
spans many blocks (the block size is shrunk so that small files have many).
"""

from __future__ import annotations

import gzip
import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from src.datamodules import dream_text
from src.datamodules.cache import default_cache_dir, verify
from src.datamodules.datamodule import PrixFixeDataModule, report_all_n
from src.datamodules.encoding import encode_array
from src.datamodules.mapping import is_mapped, release_pages
from src.datamodules.processing.autosome import AutosomeProcessing
from src.datamodules.processing.bhi import BhiProcessing
from src.datamodules.processing.onehot import OneHotProcessing
from src.datamodules.processing.unlockdna import UnlockdnaProcessing
from src.datamodules.readers import read_dream, read_dream_lines, read_sequences
from src.datamodules.split import assign_folds
from src.datamodules.store import SequenceStore, all_n_rows
from src.errors import DataError

LEFT, RIGHT = "TGCATTTTTTTCACATC", "GGTTACGGCTGTT"


def dream_text_lines(n: int, seed: int = 0) -> list[str]:
    """``n`` realistic DREAM lines: adapters, 70-90 nt random regions, some lower case and N, mixed targets."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        body = "".join(rng.choice(list("ACGT"), size=int(rng.integers(70, 91))))
        if i % 13 == 0:
            body = body[:5] + "N" + body[6:]
        seq = LEFT + body + RIGHT
        if i % 17 == 0:
            seq = seq.lower()
        value = f"{int(rng.integers(0, 18))}" if i % 2 else f"{rng.uniform(0, 17):.15g}"
        out.append(f"{seq}\t{value}")
    return out


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 4 KiB, so that a few thousand lines span hundreds of blocks."""
    monkeypatch.setattr(dream_text, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(dream_text.blocks, "__defaults__", (4096,))


def write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_text(end.join(lines) + end)
    return path


def assert_same_records(a, b) -> None:
    """Same sequences (codes, lengths), targets, lines and folds."""
    codes_a, len_a = encode_array(list(a.sequences))
    codes_b, len_b = encode_array(list(b.sequences))
    np.testing.assert_array_equal(codes_a, codes_b)
    np.testing.assert_array_equal(len_a, len_b)
    np.testing.assert_array_equal(np.asarray(a.targets), np.asarray(b.targets))
    np.testing.assert_array_equal(np.asarray(a.lines), np.asarray(b.lines))
    np.testing.assert_array_equal(assign_folds(codes_a, len_a), assign_folds(codes_b, len_b))


def test_vectorised_reader_equals_the_line_reader(tmp_path: Path, small_blocks: None) -> None:
    lines = dream_text_lines(3000)
    lines[10] = lines[10] + "\r"  # a CRLF line
    lines[20] = ""  # a blank line: line numbers of later records shift by one
    lines[30] = lines[30].replace("\t", "\t  ")  # spaces around the number
    lines[40] = lines[40].split("\t")[0] + "\t1.5e1"
    path = write(tmp_path / "train.txt", lines)
    fast, reference = read_dream(path), read_dream_lines(path)
    assert fast.store is not None and reference.store is None
    assert_same_records(fast, reference)
    assert len(fast) == 2999 and fast.lines[-1] == 3000 and float(fast.targets[39, 0]) == 15.0  # line 41 is record 40
    # the store's own hashes give the folds of the raw sequences
    codes, lengths = encode_array(list(reference.sequences))
    np.testing.assert_array_equal(fast.store.hashes % np.uint64(10), assign_folds(codes, lengths))


def test_cache_round_trip_equals_a_fresh_parse(tmp_path: Path, small_blocks: None) -> None:
    path = write(tmp_path / "train.txt", dream_text_lines(2000, seed=1))
    cache = tmp_path / "cache"
    built = read_dream(path, cache=True, cache_dir=cache)
    entries = [p for p in cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and not list(cache.glob(".*.tmp"))
    mapped = read_dream(path, cache=True, cache_dir=cache)
    assert is_mapped(mapped.store.codes) and not is_mapped(read_dream(path).store.lengths[:0].copy())
    for records in (built, mapped):
        assert_same_records(records, read_dream(path))
        np.testing.assert_array_equal(records.store.codes, read_dream(path).store.codes)
        np.testing.assert_array_equal(records.store.hashes, read_dream(path).store.hashes)


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "prixfixe"


def test_a_changed_file_gets_a_new_entry(tmp_path: Path) -> None:
    lines = dream_text_lines(300, seed=2)
    path = write(tmp_path / "train.txt", lines)
    cache = tmp_path / "cache"
    first = read_dream(path, cache=True, cache_dir=cache)
    assert first.targets[0, 0] == np.float32(lines[0].split("\t")[1])
    stat = path.stat()
    seq, old = lines[0].split("\t")
    new = "3." + "5" * (len(old) - 2)  # the same number of bytes
    lines[0] = f"{seq}\t{new}"
    write(path, lines)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: the content digest decides
    assert path.stat().st_size == stat.st_size
    second = read_dream(path, cache=True, cache_dir=cache)
    assert float(second.targets[0, 0]) == np.float32(float(new))
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


def _read_in_process(args: tuple[str, str]) -> tuple[int, float]:
    path, cache = args
    records = read_dream(path, cache=True, cache_dir=cache)
    return len(records), float(np.asarray(records.targets).sum())


def test_two_processes_building_one_entry_end_with_one_valid_entry(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", dream_text_lines(4000, seed=3))
    cache = tmp_path / "cache"
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_read_in_process, [(str(path), str(cache))] * 2)
    assert results[0] == results[1] and results[0][0] == 4000
    entries = [p for p in cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and not list(cache.glob(".*.tmp"))
    key = entries[0].name.split("-", 1)[1]
    assert verify(entries[0], key) is not None


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_a_corrupt_entry_is_detected_and_rebuilt(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "train.txt", dream_text_lines(500, seed=4))
    cache = tmp_path / "cache"
    fresh = read_dream(path, cache=True, cache_dir=cache)
    expected = np.array(fresh.store.codes)
    del fresh
    entry = next(p for p in cache.iterdir() if p.is_dir())
    codes = entry / "codes.bin"
    if damage == "truncate":
        codes.write_bytes(codes.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(codes.read_bytes())
        data[len(data) // 2] ^= 1
        codes.write_bytes(bytes(data))
    else:
        (entry / "meta.json").write_text("{")
    with caplog.at_level("WARNING"):
        again = read_dream(path, cache=True, cache_dir=cache)
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(np.asarray(again.store.codes), expected)
    assert verify(entry, entry.name.split("-", 1)[1]) is not None


def test_gzip_equals_plain(tmp_path: Path, small_blocks: None) -> None:
    lines = dream_text_lines(1500, seed=5)
    plain = write(tmp_path / "train.txt", lines)
    packed = tmp_path / "train.txt.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert_same_records(read_dream(packed), read_dream(plain))
    assert_same_records(read_dream(packed, cache=True, cache_dir=tmp_path / "c"), read_dream(plain))
    # prediction inputs too, and the content decides (a gzip file named .txt is still read)
    renamed = tmp_path / "predict_me.txt"
    renamed.write_bytes(packed.read_bytes())
    assert list(read_sequences(renamed).sequences) == [ln.split("\t")[0] for ln in lines]


def test_a_broken_gzip_file_is_named_as_such(tmp_path: Path) -> None:
    packed = gzip.compress(("\n".join(dream_text_lines(200)) + "\n").encode())
    path = tmp_path / "train.txt.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="not a readable gzip file") as err:
        read_dream(path)
    assert "UTF-8" not in str(err.value)


BAD_LINES = {
    "letter": ("{seq}X\t5.0", "letter 'X' at position"),
    "columns": ("{seq}\t5.0\textra", "expected 2 tab-separated columns"),
    "missing column": ("{seq}", "missing expression column"),
    "not a number": ("{seq}\tfive", "is not a number"),
    "missing value": ("{seq}\t", "missing expression value"),
    "infinite": ("{seq}\tinf", "must be finite"),
    "nan": ("{seq}\tnan", "must be finite"),
    "huge": ("{seq}\t1e999", "must be finite"),
    "empty sequence": ("\t5.0", "empty sequence"),
    "space in sequence": ("{half} {half}\t5.0", "letter ' ' at position"),
    "two dots": ("{seq}\t1.2.3", "is not a number"),
}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_every_error_names_file_and_line_deep_in_a_large_file(tmp_path: Path, small_blocks: None, kind: str) -> None:
    lines = dream_text_lines(5000, seed=6)
    bad, fragment = BAD_LINES[kind]
    seq = lines[4321].split("\t")[0]
    lines[4321] = bad.format(seq=seq, half=seq[:40])
    path = write(tmp_path / "train.txt", lines)
    with pytest.raises(DataError) as expected:
        read_dream_lines(path)
    with pytest.raises(DataError) as got:
        read_dream(path)
    assert str(got.value) == str(expected.value)
    assert str(got.value).startswith(f"{path}:4322: ") and fragment in str(got.value)


def test_error_order_and_file_level_errors_match_the_line_reader(tmp_path: Path, small_blocks: None) -> None:
    lines = dream_text_lines(3000, seed=7)
    seq = lines[0].split("\t")[0]
    lines[100] = seq + "Q\t1"  # a letter error early ...
    lines[2500] = seq + "\tabc"  # ... loses to a number error later, as in the line reader
    cases = {
        "order.txt": ("\n".join(lines) + "\n").encode(),
        "empty.txt": b"",
        "blank.txt": b"\n  \n\n",
        "bom.txt": b"\xef\xbb\xbf" + ("\n".join(lines[:50]) + "\n").encode(),
        "latin1.txt": ("\n".join(lines[:2000]) + "\n").encode() + "ACGT\u00e9\t1\n".encode("latin-1"),
        "utf8_letter.txt": ("\n".join(lines[:20]) + "\nACG\u00e9T\t1\n").encode(),
        "lone_cr.txt": ("\n".join(lines[:20]) + "\nACGT\t1\rACGT\t2\n").encode(),
        "no_final_newline.txt": "\n".join(lines[:30]).encode(),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        try:
            expected = read_dream_lines(path)
        except DataError as err:
            with pytest.raises(DataError) as got:
                read_dream(path)
            assert str(got.value) == str(err), name
        else:
            assert_same_records(read_dream(path), expected)


def test_length_policy_errors_cite_the_line_from_the_cache(tmp_path: Path, small_blocks: None) -> None:
    lines = dream_text_lines(3000, seed=8)
    lines[2000] = ""  # shifts the line numbers after it
    lines[2700] = "ACGTACGT\t4"  # 8 nt: not longer than autosome's 17-nt adapter
    path = write(tmp_path / "train.txt", lines)
    for cache in (False, True, True):  # fresh, building the cache, mapping it
        dm = PrixFixeDataModule(
            lambda cache=cache: read_dream(path, cache=cache, cache_dir=tmp_path / "c"), AutosomeProcessing()
        )
        with pytest.raises(DataError) as err:
            dm.setup()
        assert str(err.value).startswith(f"{path}:2701: sequence of 8 nt is not longer than the 17-nt adapter")


def test_split_and_batches_are_unchanged_by_the_store(tmp_path: Path) -> None:
    """Same folds and the same batches whether the reads come from the cache or from strings in memory."""
    lines = dream_text_lines(800, seed=9)
    path = write(tmp_path / "train.txt", lines)
    # reads up to 120 nt: the 110-nt processings trim them (their default policy stops at a long read)
    trim = {"on_long": "trim"}
    for processing in (
        AutosomeProcessing(),
        BhiProcessing(**trim),
        UnlockdnaProcessing(),
        OneHotProcessing(110, **trim),
    ):
        cached = PrixFixeDataModule(lambda: read_dream(path, cache=True, cache_dir=tmp_path / "c"), processing, 16)
        strings = PrixFixeDataModule(lambda: read_dream_lines(path), processing, 16)
        cached.setup()
        strings.setup()
        codes, lengths = encode_array(list(read_dream_lines(path).sequences))
        np.testing.assert_array_equal(cached.folds, assign_folds(codes, lengths))
        np.testing.assert_array_equal(strings.folds, cached.folds)
        for a, b in zip(cached.train_dataloader(), strings.train_dataloader()):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
            break
        val_a, val_b = next(iter(cached.val_dataloader())), next(iter(strings.val_dataloader()))
        assert all(np.array_equal(val_a[k], val_b[k]) for k in val_a)


def test_val_max_items_is_a_seeded_subset_shared_by_every_processing(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", dream_text_lines(1500, seed=10))

    def val_rows(processing, seed: int = 0, limit: int | None = 40, val_seed: int = 0) -> np.ndarray:
        dm = PrixFixeDataModule(
            lambda: read_dream(path), processing, 16, seed=seed, val_max_items=limit, val_seed=val_seed
        )
        dm.setup()
        return dm.val_set.rows

    full = val_rows(AutosomeProcessing(), limit=None)
    subset = val_rows(AutosomeProcessing())
    assert len(subset) == 40 and np.isin(subset, full).all() and (np.diff(subset) > 0).all()
    for other in (BhiProcessing(on_long="trim"), UnlockdnaProcessing(), OneHotProcessing(seq_len=110, on_long="trim")):
        np.testing.assert_array_equal(val_rows(other, seed=5), subset)  # the run's seed does not move it
    assert not np.array_equal(val_rows(AutosomeProcessing(), val_seed=1), subset)
    with pytest.raises(Exception, match="val_max_items"):
        PrixFixeDataModule(lambda: read_dream(path), AutosomeProcessing(), val_max_items=0)


def test_warm_read_maps_instead_of_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "train.txt", dream_text_lines(300, seed=11))
    read_dream(path, cache=True, cache_dir=tmp_path / "c")

    def no_parsing(*args, **kwargs):
        raise AssertionError("a valid cache entry must not be parsed again")

    monkeypatch.setattr("src.datamodules.readers.scan_dream", no_parsing)
    records = read_dream(path, cache=True, cache_dir=tmp_path / "c")
    assert len(records) == 300
    before = np.array(records.targets)
    release_pages(records.targets)  # dropping the resident pages keeps the data
    np.testing.assert_array_equal(records.targets, before)


def test_all_n_reads_found_when_the_entry_is_built_equal_a_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache records the all-N reads once; a warm run warns about the same lines without scanning the codes."""
    lines = dream_text_lines(400, seed=12)
    for i in (3, 150, 151, 399):
        lines[i] = ("n" if i == 150 else "N") * (90 + i % 7) + "\t5"
    path = write(tmp_path / "train.txt", lines)
    fresh = read_dream(path)
    np.testing.assert_array_equal(all_n_rows(fresh.store), [3, 150, 151, 399])
    built = read_dream(path, cache=True, cache_dir=tmp_path / "c")
    assert built.all_n is not None and built.all_n[0] == 4
    np.testing.assert_array_equal(built.all_n[1], [3, 150, 151, 399])

    def no_scan(*args, **kwargs):
        raise AssertionError("a cached entry must not scan its codes for all-N reads again")

    monkeypatch.setattr("src.datamodules.datamodule.all_n_rows", no_scan)
    with caplog.at_level(logging.WARNING, logger="src.datamodules.datamodule"):
        warm = read_dream(path, cache=True, cache_dir=tmp_path / "c")
        assert report_all_n(warm, warm.store, shown=2) == 4
    warned = [r.getMessage() for r in caplog.records if "only N" in r.getMessage()]
    assert warned == [
        f"{path}:4: read of 93 nt is only N (no sequence information)",
        f"{path}:151: read of 93 nt is only N (no sequence information)",
        f"{path}: 4 reads in all are only N",
    ]


def test_all_n_rows_handles_empty_rows_and_chunk_edges() -> None:
    codes, lengths = encode_array(["NNN", "", "ACN", "N", "", "NN"])
    store = SequenceStore.from_matrix(codes, lengths)
    for chunk in (1, 2, 4, 100):
        np.testing.assert_array_equal(all_n_rows(store, chunk=chunk), [0, 3, 5])


def test_evaluation_reads_gzip_test_folders_and_predictions(tmp_path: Path) -> None:
    """A DREAM test folder whose files are gzip (same names) loads as the plain one; so does a gzip predictions file."""
    import shutil

    from src.evaluation import load_test_suite
    from src.evaluation.prediction_file import read_prediction_file
    from tests.helpers import shared_file

    source = shared_file("dream_test_format")
    plain = load_test_suite(source)
    packed = tmp_path / "packed"
    shutil.copytree(source, packed)
    for file in packed.iterdir():
        file.write_bytes(gzip.compress(file.read_bytes()))
    suite = load_test_suite(packed)
    assert suite.sequences == plain.sequences and np.array_equal(suite.measured, plain.measured)
    assert suite.singles.keys() == plain.singles.keys()
    assert all(np.array_equal(suite.singles[k], plain.singles[k]) for k in plain.singles)
    predictions = tmp_path / "pred.tsv.gz"
    predictions.write_bytes(gzip.compress("".join(f"{i * 0.5}\n" for i in range(len(plain.sequences))).encode()))
    np.testing.assert_array_equal(read_prediction_file(predictions, plain), np.arange(len(plain.sequences)) * 0.5)


def test_cached_rows_are_read_from_the_file_and_survive_pickling(tmp_path: Path) -> None:
    """A cached store reads its rows from codes.bin (same rows as a fresh parse); a pickled copy reopens the file."""
    import pickle

    path = write(tmp_path / "train.txt", dream_text_lines(500, seed=13))
    cached = read_dream(path, cache=True, cache_dir=tmp_path / "c").store
    fresh = read_dream(path).store
    assert cached.codes_path is not None and cached.codes_path.name == "codes.bin" and fresh.codes_path is None
    for index in (np.array([499, 3, 3, 250]), np.arange(100, 164)):  # random rows, then consecutive ones
        for a, b in zip(cached.rows(index), fresh.rows(index), strict=True):
            np.testing.assert_array_equal(a, b)
    copy = pickle.loads(pickle.dumps(cached))
    assert copy._fd is None
    np.testing.assert_array_equal(copy.rows(np.array([7, 8]))[0], fresh.rows(np.array([7, 8]))[0])
