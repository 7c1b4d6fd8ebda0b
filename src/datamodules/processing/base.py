"""Team data processing: from validated raw codes to model-ready batches.

A processing object has two stages:

* ``prepare(codes, lengths)`` runs once per data set on the uint8 code matrix
  (see :mod:`src.datamodules.encoding`) and returns a dict of per-sequence numpy
  arrays (at least ``"codes"``), e.g. fixed-length padded codes. It sees only
  reads that passed :meth:`Processing.length_policy`.
* ``make_batch(fields, y, view, train, generator)`` runs per batch on tensors
  indexed from those arrays and returns the batch dict: ``"x"`` as float
  ``(B, channels, seq_len)``, ``"y"`` as float ``(B, n_targets)`` on the
  expression scale, plus any extra keys blocks may read. It is vectorised
  (no per-sample Python) and draws randomness only from ``generator``.

``id_fields(ids, n)`` adds per-sequence arrays taken from the record ids (the
MPRA/STARR processing's reverse-orientation flag); the default adds none. A processing
with such an orientation channel names the id marker it reads (``orientation_marker``)
and builds the same arrays for a given orientation (``orientation_fields``), so that
prediction inputs without ids can state their orientation instead of having it guessed.

Length policy: each processing takes raw reads within a length range
(:meth:`Processing.length_range`): nothing of such a read is cut, and the window
around it is filled as the processing's design says (vector sequence, N or zeros;
see each processing). A read longer than the range follows ``on_long`` (``error``,
the default: one line naming file, line and key; ``trim``: the processing's own
crop; ``drop``: left out of the data set); a read shorter than the range (e.g.
nothing left after adapter removal) follows ``on_short`` (``error``, the default;
``pad``: the processing's filling takes its place; ``drop``). Trimmed, padded and
dropped reads are counted in one log line.

``train_views`` > 1 multiplies the training set (autosome: forward and reverse
complement, view 0 and 1). ``reverse_complement(x)`` maps an encoded batch to
its reverse-complement encoding (used for test-time averaging and conjoined
losses); ``rc_average`` says whether evaluation averages both strands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from src.errors import ConfigError, LengthPolicyError

log = logging.getLogger(__name__)

ON_LONG = ("error", "trim", "drop")
ON_SHORT = ("error", "pad", "drop")


@dataclass(frozen=True)
class LengthDecision:
    """Outcome of the length policy on a set of reads: which stay, and how many were changed."""

    keep: np.ndarray  # bool (N,): False = dropped
    trimmed: int = 0
    padded: int = 0
    dropped_long: int = 0
    dropped_short: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_long + self.dropped_short


def check_policy(key: str, value: object, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a :class:`ConfigError` naming ``processing.<key>``."""
    if value not in allowed:
        raise ConfigError(f"processing.{key} must be one of {', '.join(allowed)} (got {value!r})")
    return str(value)


class Processing:
    """Base class; subclasses set ``name``, ``channels``, ``seq_len`` and call :meth:`set_length_policy`."""

    name: str = "base"
    channels: int
    seq_len: int
    train_views: int = 1
    rc_average: bool = False
    on_long: str = "error"
    on_short: str = "error"
    long_choices: tuple[str, ...] = ON_LONG  # a processing that cannot crop or pad offers fewer
    short_choices: tuple[str, ...] = ON_SHORT

    def set_length_policy(self, on_long: str = "error", on_short: str = "error") -> None:
        """Validate and keep the ``on_long`` / ``on_short`` policy (bad values name the config key)."""
        self.on_long = check_policy("on_long", on_long, self.long_choices)
        self.on_short = check_policy("on_short", on_short, self.short_choices)

    def length_range(self) -> tuple[int, int]:
        """``(shortest, longest)`` raw read length (nt) the processing takes without its length policy."""
        raise NotImplementedError

    def long_problem(self, length: int) -> str:
        """Why a read of ``length`` nt is too long (the error text of ``on_long=error``)."""
        longest = self.length_range()[1]
        return f"sequence of {length} nt is longer than the {longest} nt processing {self.name} keeps"

    def short_problem(self, length: int) -> str:
        """Why a read of ``length`` nt is too short to encode (the error text of ``on_short=error``)."""
        return f"sequence of {length} nt is shorter than the {self.length_range()[0]} nt processing {self.name} needs"

    def length_policy(self, lengths: np.ndarray) -> LengthDecision:
        """Apply ``on_long`` / ``on_short`` to raw read lengths; ``error`` raises :class:`LengthPolicyError`."""
        lengths = np.asarray(lengths, dtype=np.int64)
        floor, longest = self.length_range()
        long = lengths > longest
        short = lengths < floor
        which = f"processing={self.name}, processing"
        bad_long = np.flatnonzero(long) if self.on_long == "error" else np.zeros(0, dtype=np.int64)
        bad_short = np.flatnonzero(short) if self.on_short == "error" else np.zeros(0, dtype=np.int64)
        if bad_long.size or bad_short.size:  # the first offending read, whichever way it is off
            row = int(min(bad_long[:1].tolist() + bad_short[:1].tolist()))
            if long[row]:
                others = " or ".join(c for c in self.long_choices if c != "error")
                problem, key = self.long_problem(int(lengths[row])), f"on_long=error; or {others}"
            else:
                others = " or ".join(c for c in self.short_choices if c != "error")
                problem, key = self.short_problem(int(lengths[row])), f"on_short=error; or {others}"
            raise LengthPolicyError(row, f"{problem} ({which}.{key})")
        keep = np.ones(len(lengths), dtype=bool)
        if self.on_long == "drop":
            keep &= ~long
        if self.on_short == "drop":
            keep &= ~short
        return LengthDecision(
            keep=keep,
            trimmed=int(long.sum()) if self.on_long == "trim" else 0,
            padded=int(short.sum()) if self.on_short == "pad" else 0,
            dropped_long=int(long.sum()) if self.on_long == "drop" else 0,
            dropped_short=int(short.sum()) if self.on_short == "drop" else 0,
        )

    def report_lengths(self, decision: LengthDecision, where: str) -> None:
        """One log line counting the reads the policy trimmed, padded or dropped (nothing when none)."""
        parts = []
        if decision.trimmed:
            parts.append(f"{decision.trimmed} trimmed (processing.on_long=trim)")
        if decision.dropped_long:
            parts.append(f"{decision.dropped_long} dropped as too long (processing.on_long=drop)")
        if decision.padded:
            parts.append(f"{decision.padded} padded whole (processing.on_short=pad)")
        if decision.dropped_short:
            parts.append(f"{decision.dropped_short} dropped as too short (processing.on_short=drop)")
        if parts:
            lo, hi = self.length_range()
            log.warning(
                "%s: length policy of processing %s (%d-%d nt): %s of %d reads",
                where,
                self.name,
                lo,
                hi,
                ", ".join(parts),
                len(decision.keep),
            )

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def id_fields(self, ids: list[str] | None, n: int) -> dict[str, np.ndarray]:
        """Per-sequence arrays derived from the ids of ``n`` records (none by default)."""
        return {}

    @property
    def orientation_marker(self) -> str | None:
        """The id text that marks a reverse-orientation read, for a processing with an orientation channel."""
        return None

    def orientation_fields(self, reverse: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`id_fields` for reads of a known orientation (``reverse``: bool per read; none by default)."""
        return {}

    def make_batch(
        self,
        fields: dict[str, Tensor],
        y: Tensor,
        view: Tensor,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def reverse_complement(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"processing {self.name!r} has no reverse-complement encoding")

    def describe(self) -> str:
        return f"{self.name}: {self.channels} x {self.seq_len}"
