"""The errors module: one-line messages and the exit status of each kind of error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from src.errors import (
    EXIT_DIVERGED,
    EXIT_USER_ERROR,
    CompositionError,
    ConfigError,
    DataError,
    DivergedError,
    LedgerError,
    error_line,
    exit_code,
    first_line,
    user_message,
)
from tests.helpers import ROOT


def test_first_line_skips_blank_lines_and_strips() -> None:
    assert first_line(ValueError("\n  bad value  \nmore detail")) == "bad value"
    assert first_line(RuntimeError()) == "RuntimeError"
    assert first_line(None) == "" and first_line("   ") == ""


def test_first_line_of_a_traceback_is_its_last_line() -> None:
    text = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n'
    assert first_line(text) == "ValueError: boom"


def test_error_line_names_the_type() -> None:
    assert error_line(DataError("letter 'X'", "a.txt", 3)) == "DataError: a.txt:3: letter 'X'"
    assert error_line(DivergedError()) == "DivergedError"


def test_missing_value_message_says_how_to_set_it() -> None:
    cfg = OmegaConf.create({"data": {"path": "???"}})
    with pytest.raises(MissingMandatoryValue) as info:
        _ = cfg.data.path
    assert (
        user_message(info.value)
        == "missing required config value data.path (set it on the command line: data.path=...)"
    )
    assert error_line(info.value) == "MissingMandatoryValue: missing required config value data.path"


def test_exit_codes() -> None:
    assert exit_code(DataError("x")) == EXIT_USER_ERROR == 2
    assert exit_code(CompositionError("x")) == exit_code(ConfigError("x")) == EXIT_USER_ERROR
    assert exit_code(FileNotFoundError("x")) == EXIT_USER_ERROR
    assert exit_code(DivergedError("x")) == EXIT_DIVERGED == 3
    assert exit_code(RuntimeError("a bug")) is None
    assert LedgerError("no ledger").code == EXIT_USER_ERROR


def test_errors_module_does_not_import_torch() -> None:
    code = (
        "import sys, src.errors, src.utils.io, src.utils.naming, src.utils.wandb_offline; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
