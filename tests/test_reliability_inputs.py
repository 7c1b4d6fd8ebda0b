"""Bad input and bad config: one line naming the file, the line and the problem; exit 2; nothing written.

Every case goes through the CLI wrapper :func:`src.entry.run_task` in-process (the entry point
minus Hydra's start-up); one real subprocess checks the console of ``python train.py`` end to end.
The run folder is created empty beforehand, as Hydra does, and must still be empty afterwards.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from src.entry import run_task
from src.errors import DataError
from src.predict_task import predict
from src.train_task import train
from tests.helpers import ROOT, compose_cfg, tiny_run

TINY = [
    "first=resnet",
    "core=resnet",
    "final=resnet",
    "first.block.out_channels=8",
    "core.block.widths=[8,8,8,8]",
    "core.block.depths=[1,1,1,1]",
]
QUICK = tiny_run(data=False)


def random_seqs(n: int, length: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), size=length)) for _ in range(n)]


def with_bad_row(rows: list[str], line: int | None = None, bad: str = "") -> str:
    """Rows with ``bad`` placed so that it is on 1-based ``line`` of the file (none when ``line`` is None)."""
    out = list(rows)
    if line is not None:
        out.insert(line - 1, bad)
    return "\n".join(out) + "\n"


def dream(line: int, bad: str, length: int = 110) -> str:
    return with_bad_row([f"{s}\t{i % 13 + 0.5}" for i, s in enumerate(random_seqs(30, length))], line, bad)


MPRA_HEADER = "seq_id\tseq\tmean_value\tfold"


def mpra(line: int | None = None, bad: str = "", header: str = MPRA_HEADER) -> str:
    rows = [header] + [f"s{i}\t{s}\t{i * 0.1:.2f}\t{i % 10}" for i, s in enumerate(random_seqs(30, 230))]
    return with_bad_row(rows, line, bad)


STARR_HEADER = "seqnames\tstart\tend\tID\tset\tSequence\tDev_log2_enrichment\tHk_log2_enrichment"


def starr_row(i: int, seq: str, dev: str = "0.5", hk: str = "-0.25") -> str:
    return f"chr2L\t{i}\t{i + 249}\tpeak{i}\tTrain\t{seq}\t{dev}\t{hk}"


def starr(line: int | None = None, bad: str = "", header: str = STARR_HEADER) -> str:
    rows = [header] + [starr_row(i, s) for i, s in enumerate(random_seqs(30, 249))]
    return with_bad_row(rows, line, bad)


SEQ = random_seqs(1, 110, seed=9)[0]
MPRA_SEQ = random_seqs(1, 230, seed=9)[0]
STARR_SEQ = random_seqs(1, 249, seed=9)[0]

# (data set, file content, extra overrides, line cited or None, fragment of the problem)
CASES: dict[str, tuple[str, str | bytes | None, list[str], int | None, str]] = {
    "dream-letter": (
        "dream",
        dream(5, f"{SEQ[:39].lower()}x{SEQ[40:].lower()}\t1.0"),
        [],
        5,
        "letter 'x' at position 40",
    ),
    "dream-empty-sequence": ("dream", dream(7, "\t1.5"), [], 7, "empty sequence"),
    "dream-inf-target": ("dream", dream(3, f"{SEQ}\tinf"), [], 3, "expression is inf (must be finite)"),
    "dream-missing-value": ("dream", dream(12, f"{SEQ}\t"), [], 12, "missing expression value"),
    "dream-missing-column": ("dream", dream(4, SEQ), [], 4, "missing expression column"),
    "dream-not-a-number": ("dream", dream(9, f"{SEQ}\t1,5"), [], 9, "expression '1,5' is not a number"),
    "dream-non-utf8": (
        "dream",
        dream(6, f"{SEQ}\t2.0").encode().replace(SEQ.encode(), b"ACGT\xe9" + SEQ.encode()),
        [],
        6,
        "not UTF-8 text (byte 0xe9)",
    ),
    "dream-empty-file": ("dream", "\n \n", [], None, "file is empty"),
    "dream-missing-file": ("dream", None, [], None, "file not found"),
    "autosome-adapter-only": (
        "dream",
        dream(8, "ACGTACGTACGTACGTA\t1.0"),
        ["processing=autosome"],
        8,
        "sequence of 17 nt is not longer than the 17-nt adapter",
    ),
    "autosome-5000-nt": (
        "dream",
        dream(7, f"{random_seqs(1, 5000, seed=3)[0]}\t1.0"),
        ["processing=autosome"],
        7,
        "sequence of 5000 nt is 4983 nt after the 17-nt adapter, longer than processing.seq_len=150 "
        "(processing=autosome, processing.on_long=error; or trim or drop)",
    ),
    "unlockdna-too-long": (
        "dream",
        dream(9, f"{SEQ}{SEQ[:30]}\t1.0"),
        ["processing=unlockdna", "processing.on_long=error"],
        9,
        "longer than processing.half_len=100",
    ),
    "onehot-too-long": (
        "dream",
        dream(10, f"{SEQ}A\t1.0"),
        ["processing=onehot", "processing.on_long=error"],
        10,
        "sequence of 111 nt is longer than processing.seq_len=110 "
        "(processing=onehot, processing.on_long=error; or trim or drop)",
    ),
    "mpra-misnamed-column": (
        "human_mpra",
        mpra(header="seq_id\tsequence\tmean_value\tfold"),
        [],
        1,
        "missing column 'seq' (header has: seq_id, sequence",
    ),
    "mpra-nan": ("human_mpra", mpra(3, f"x\t{MPRA_SEQ}\tnan\t1"), [], 3, "mean_value is nan (must be finite)"),
    "mpra-column-count": (
        "human_mpra",
        mpra(4, f"x\t{MPRA_SEQ}\t1.0"),
        [],
        4,
        "expected 4 columns like the header, found 3",
    ),
    "mpra-header-only": ("human_mpra", MPRA_HEADER + "\n", [], None, "file holds a header but no rows"),
    "starr-missing-target-column": (
        "drosophila_starr",
        starr(header=STARR_HEADER.replace("\tHk_log2_enrichment", "\tHk")),
        [],
        1,
        "missing column 'Hk_log2_enrichment'",
    ),
    "starr-missing-value": (
        "drosophila_starr",
        starr(5, starr_row(99, STARR_SEQ, dev="")),
        [],
        5,
        "missing Dev_log2_enrichment value",
    ),
    "starr-letter": (
        "drosophila_starr",
        starr(2, starr_row(99, STARR_SEQ[:10] + "R" + STARR_SEQ[11:])),
        [],
        2,
        "letter 'R' at position 11",
    ),
    "starr-onehot-too-long": (
        "drosophila_starr",
        starr(6, starr_row(99, STARR_SEQ + "G")),
        ["processing=onehot", "processing.on_long=error"],
        6,
        "longer than processing.seq_len=249",
    ),
}


def write_case(tmp_path: Path, name: str, content: str | bytes | None) -> Path:
    path = tmp_path / f"{name}.txt"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def run_dir_of(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # Hydra creates the run folder before the task starts
    return run_dir


def expect_one_line_exit(call: Callable[[], Any], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    """Run ``call``; it must exit with ``code`` and print exactly one ``error: ...`` line; returns the line."""
    with pytest.raises(SystemExit) as exit_info:
        call()
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_training_input_is_one_line_with_file_and_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, content, extra, line, fragment = CASES[case]
    path = write_case(tmp_path, case, content)
    run_dir = run_dir_of(tmp_path)
    cfg = compose_cfg([*QUICK, *TINY, f"data={data}", f"data.path={path}", *extra], run_dir=run_dir)
    message = expect_one_line_exit(lambda: run_task(train, cfg), capsys)
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert message.startswith(f"error: {where}"), message
    assert fragment in message, message
    assert list(run_dir.iterdir()) == []  # nothing written before validation passed


def test_debug_true_raises_with_the_traceback(tmp_path: Path) -> None:
    path = write_case(tmp_path, "bad", dream(2, f"{SEQ}\tnan"))
    cfg = compose_cfg([*QUICK, *TINY, "data=dream", f"data.path={path}", "debug=true"], run_dir=run_dir_of(tmp_path))
    with pytest.raises(DataError, match=rf"{path}:2: expression is nan"):
        run_task(train, cfg)


# --------------------------------------------------------------------- accepted input, and the CLI console
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str]]:
    """A tiny autosome-processing run on a DREAM file with lower case, N and duplicated sequences."""
    folder = tmp_path_factory.mktemp("accepted")
    seqs = random_seqs(80, 110, seed=1)
    seqs[3] = seqs[3][:50].lower() + "n" + seqs[3][51:].lower()  # lower case and N
    seqs[10] = seqs[11] = seqs[0]  # x3
    seqs[12] = seqs[1].lower()  # x2: duplicates are counted case-insensitively
    path = folder / "train.txt"
    path.write_text("".join(f"{s}\t{i % 17 + 0.25}\n" for i, s in enumerate(seqs)))
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("src.datamodules.readers")
    logger.addHandler(handler)
    try:
        cfg = compose_cfg([*QUICK, *TINY, "data=dream", f"data.path={path}"], run_dir=folder / "run")
        summary = train(cfg)
    finally:
        logger.removeHandler(handler)
    return summary, records


def test_lower_case_n_and_duplicates_are_accepted_and_counted(trained: tuple[dict[str, Any], list[str]]) -> None:
    summary, records = trained
    assert summary["status"] == "ok" and summary["global_step"] == 2
    assert any("2 sequences occur more than once (3 extra copies; most frequent x3)" in r for r in records), records


def test_cli_prints_duplicates_and_one_error_line(tmp_path: Path) -> None:
    """``python train.py``: the duplicate warning reaches the console, one error line, the run folder stays empty."""
    seqs = random_seqs(30, 110, seed=2)
    rows = [f"{s}\t{i % 17}.5" for i, s in enumerate(seqs)] + [f"{seqs[0]}\t1", f"{seqs[0].lower()}\t2"]
    path = write_case(tmp_path, "dups", with_bad_row(rows, 33, "acgtNacgt\t1.0"))
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *TINY, "data=dream", f"data.path={path}", "logger=none"]
        + [f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 2
    assert f"{path}: 1 sequences occur more than once (2 extra copies; most frequent x3)" in result.stdout
    err = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert err == [
        f"error: {path}:33: sequence of 9 nt is not longer than the 17-nt adapter autosome removes "
        "(processing=autosome, processing.on_short=error; or pad or drop)"
    ], result.stderr
    assert run_dir.is_dir() and list(run_dir.iterdir()) == []


# ------------------------------------------------------------------------------------------ prediction input
PREDICT_CASES: dict[str, tuple[str | bytes | None, tuple[int, ...] | None, str]] = {
    "fasta-letter": (f">a\n{SEQ}\n>b\n{SEQ[:60]}\n{SEQ[60:70]}Z{SEQ[71:]}\n", (3, 5), "letter 'Z'"),
    "fasta-empty-record": (f">a\n{SEQ}\n>b\n>c\n{SEQ}\n", (3,), "empty sequence"),
    "not-fasta-after-all": (f"{SEQ}\n>a\n{SEQ}\n", (2,), "letter '>' at position 1"),
    "plain-letter": (f"{SEQ}\n{SEQ}\n{SEQ[:5]}-{SEQ[6:]}\n", (3,), "letter '-' at position 6"),
    "plain-too-short": (
        f"{SEQ}\n\n{SEQ.lower()}\nACGTACGT\n",
        (4,),
        "sequence of 8 nt is not longer than the 17-nt adapter",
    ),
    "tsv-not-a-number": (f"{SEQ}\t1.0\n{SEQ}\tabc\n", (2,), "expression 'abc' is not a number"),
    "non-utf8": (f"{SEQ}\n{SEQ}\n".encode() + b"AC\xffGT\n", (3,), "not UTF-8 text (byte 0xff)"),
    "empty-file": ("", None, "file is empty"),
    "missing-file": (None, None, "file not found"),
}


@pytest.mark.parametrize("case", sorted(PREDICT_CASES))
def test_bad_prediction_input_is_one_line_with_file_and_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], trained: tuple[dict[str, Any], list[str]]
) -> None:
    content, lines, fragment = PREDICT_CASES[case]
    path = write_case(tmp_path, case, content)
    output = tmp_path / "predictions.tsv"
    cfg = OmegaConf.create(
        {
            "ckpt_path": trained[0]["last_checkpoint"],
            "input": str(path),
            "output": str(output),
            "rc_average": None,
            "batch_size": 64,
            "device": "cpu",
            "progress": False,
            "debug": False,
        }
    )
    message = expect_one_line_exit(lambda: run_task(predict, cfg), capsys)
    # a FASTA record is cited by its header line or by the line holding the letter
    cited = [f"error: {path}:{n}: " for n in lines] if lines else [f"error: {path}: "]
    assert any(message.startswith(c) for c in cited), message
    assert fragment in message, message
    assert not output.exists()


# ------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(("group", "options"), [("first", "bhi"), ("processing", "onehot"), ("recipe", "unlockdna")])
def test_unknown_group_option_lists_the_available_ones(group: str, options: str) -> None:
    with pytest.raises(MissingConfigException) as err:
        compose_cfg([f"{group}=nope"])
    message = str(err.value)
    assert f"Could not find '{group}/nope'" in message
    assert f"Available options in '{group}':" in message and f"\t{options}\n" in message and "\tautosome\n" in message


def test_a_block_that_cannot_follow_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """BHI's core splits its output over two kernel branches: 15 channels cannot follow; the message says why."""
    overrides = ["first=resnet", "core=bhi", "final=autosome", "first.block.out_channels=8", "core.block.hidden=4"]
    run_dir = run_dir_of(tmp_path)
    cfg = compose_cfg([*QUICK, *overrides, "core.block.out_channels=15"], run_dir=run_dir)
    message = expect_one_line_exit(lambda: run_task(train, cfg), capsys)
    assert "core block 'bhi' cannot take input (channels=8, seq_len=150)" in message
    assert "first=resnet core=bhi final=autosome" in message and "does not split evenly" in message
    assert list(run_dir.iterdir()) == []


def test_missing_ckpt_path_is_one_line_before_data_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = run_dir_of(tmp_path)
    absent = tmp_path / "nope.ckpt"
    # the data file is absent too: the checkpoint is checked first, before any data is read
    overrides = [*QUICK, *TINY, "data=dream", f"data.path={tmp_path / 'absent.txt'}", f"ckpt_path={absent}"]
    cfg = compose_cfg(overrides, run_dir=run_dir)
    message = expect_one_line_exit(lambda: run_task(train, cfg), capsys)
    assert message == f"error: ckpt_path: checkpoint {absent} does not exist"
    assert list(run_dir.iterdir()) == []


def test_metrics_json_records_status_ok(trained: tuple[dict[str, Any], list[str]]) -> None:
    summary, _ = trained
    on_disk = json.loads((Path(summary["last_checkpoint"]).parents[1] / "metrics.json").read_text())
    assert on_disk["status"] == "ok" and on_disk == summary
