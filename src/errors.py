"""Every prixfixe exception type, the one-line error text and the exit status of each kind of error.

This module imports nothing from the project and nothing heavy (no torch), so any module, the
sweep bookkeeping and the entry points can import it cheaply.

Exit statuses of ``train.py`` / ``predict.py`` / ``evaluate.py`` (see :func:`exit_code`):
:data:`EXIT_USER_ERROR` (2) for bad input data or config, :data:`EXIT_DIVERGED` (3) when
training diverged, ``128 + signal`` (130 for SIGINT, 143 for SIGTERM) when a signal stopped training
(:class:`Interrupted`).
"""

from __future__ import annotations

import errno
import signal
from pathlib import Path

from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


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


class CompositionError(ConfigError):
    """A block cannot follow the previous one (raised by the composer, naming blocks and shapes)."""


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


class Interrupted(SystemExit):
    """Training stopped by a signal (:mod:`src.interrupts`); the exit status is ``128 + signum`` (130, 143)."""

    def __init__(self, signum: int, checkpoint: Path | None, step: int | None) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.checkpoint = checkpoint  # written at the interrupt (None: stopped at once, no new checkpoint)
        self.step = step

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return f"stopped by {self.signal_name}"


class LengthPolicyError(ValueError):
    """A sequence violates the processing's length policy; ``row`` is its 0-based index."""

    def __init__(self, row: int, problem: str) -> None:
        self.row = row
        self.problem = problem
        super().__init__(problem)


class LedgerCorruptError(ValueError):
    """A garbled sweep-ledger line that is not a torn last record."""


class LedgerError(SystemExit):
    """No usable sweep ledger (missing or empty): exits with status 2 and a message naming the path."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_USER_ERROR)
        self.message = message

    def __str__(self) -> str:
        return self.message


# a write the file system refused (full disk, read-only, no permission): one line naming the path
FILE_SYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})

# errors caused by the user's input or config: one line and EXIT_USER_ERROR instead of a traceback
USER_ERRORS: tuple[type[BaseException], ...] = (DataError, ConfigError, MissingMandatoryValue, FileNotFoundError)


def first_line(error: object) -> str:
    """The first non-blank line of an error (stripped); for a traceback text, its last line.

    An exception without a message gives its type name; ``None`` or blank text gives ``""``.
    """
    lines = [line.strip() for line in ("" if error is None else str(error)).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__ if isinstance(error, BaseException) else ""
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def is_file_system_error(err: BaseException) -> bool:
    """A write refused by the file system (see :data:`FILE_SYSTEM_ERRNOS`)."""
    return isinstance(err, OSError) and err.errno in FILE_SYSTEM_ERRNOS


def resolver_cause(err: BaseException) -> BaseException:
    """The user error a config resolver raised (``${pf.fold:...}`` on a bad ``data.fold_pair``), else ``err``.

    OmegaConf wraps an exception raised while resolving an interpolation in
    ``InterpolationResolutionError``s; the original is at the end of their ``__context__`` chain.
    """
    inner: BaseException | None = err
    while isinstance(inner, InterpolationResolutionError):
        inner = inner.__cause__ or inner.__context__
    return inner if inner is not None and isinstance(inner, USER_ERRORS) else err


def user_message(err: BaseException) -> str:
    """The one line printed for a user error (a missing config value says how to set it)."""
    err = resolver_cause(err)
    if is_file_system_error(err):
        assert isinstance(err, OSError)
        where = err.filename or "the output folder"
        return f"cannot write {where}: {err.strerror or err}"
    if isinstance(err, MissingMandatoryValue):
        return f"missing required config value {err.full_key} (set it on the command line: {err.full_key}=...)"
    return first_line(err)


def error_line(err: BaseException) -> str:
    """``"<ExceptionType>: <first line of the message>"`` (the sweep ledger's ``error`` field)."""
    err = resolver_cause(err)
    if isinstance(err, MissingMandatoryValue):
        message = f"missing required config value {err.full_key}"
    else:
        message = first_line(err) if str(err).strip() else ""
    name = type(err).__name__
    return f"{name}: {message}" if message else name


def exit_code(err: BaseException) -> int | None:
    """The exit status for ``err``: :data:`EXIT_DIVERGED`, :data:`EXIT_USER_ERROR`, or ``None`` (a bug: re-raise)."""
    if isinstance(err, DivergedError):
        return EXIT_DIVERGED
    if isinstance(resolver_cause(err), USER_ERRORS) or is_file_system_error(err):
        return EXIT_USER_ERROR
    return None
