"""Errors for bad input: one line that names the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data. ``str(err)`` is ``"<file>:<line>: <problem>"`` (line omitted when unknown)."""

    def __init__(self, problem: str, path: str | Path | None = None, line: int | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        where = self.path or "<data>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {problem}")


class ConfigError(ValueError):
    """A configuration that cannot work (unknown option, impossible combination, missing file)."""
