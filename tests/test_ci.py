"""``.ci/run``: the main suite, then the XLA suite; an XLA stack pip cannot install is skipped with one line.

``make`` is replaced (first on ``PATH``) by a script that records each target and fails the ones a test names.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

FAKE_MAKE = """#!/usr/bin/env bash
echo "$1" >> "$CALLS"
case " $FAIL " in *" $1 "*) echo "make $1 failed"; exit 7;; esac
"""


def ci(tmp_path: Path, *failing: str) -> tuple[int, list[str], list[str]]:
    """Run .ci/run with the fake make; (exit status, targets made in order, output lines)."""
    make = tmp_path / "make"
    make.write_text(FAKE_MAKE)
    make.chmod(0o755)
    calls = tmp_path / "calls"
    env = {
        **os.environ,
        "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(calls),
        "FAIL": " ".join(failing),
    }
    proc = subprocess.run(
        ["bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    targets = calls.read_text().split() if calls.exists() else []
    return proc.returncode, targets, (proc.stdout + proc.stderr).splitlines()


@pytest.mark.parametrize(
    ("failing", "status"),
    [
        ((), 0),
        (("test",), 7),  # the main suite decides
        (("test-xla",), 7),  # a failing XLA test fails CI too
        (("test", "test-xla"), 7),
    ],
)
def test_ci_runs_the_xla_suite_after_the_main_suite(tmp_path: Path, failing: tuple[str, ...], status: int) -> None:
    code, targets, _ = ci(tmp_path, *failing)
    assert targets == ["test", "xla-venv", "test-xla"]
    assert code == status


@pytest.mark.parametrize(("failing", "status"), [(("xla-venv",), 0), (("test", "xla-venv"), 7)])
def test_an_xla_stack_that_cannot_be_installed_is_one_skip_line(
    tmp_path: Path, failing: tuple[str, ...], status: int
) -> None:
    code, targets, lines = ci(tmp_path, *failing)
    assert targets == ["test", "xla-venv"] and code == status  # judged on the main suite alone
    skips = [line for line in lines if "skipped" in line]
    assert skips == [
        "test-xla skipped: torch_xla could not be installed on this machine (pip install failed, see above)"
    ]
