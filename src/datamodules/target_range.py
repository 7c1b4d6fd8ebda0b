"""The data set's declared target range (``data.target_range``, e.g. DREAM's 0-17 expression).

A target outside it, or not a number, is a :class:`DataError` naming the file and line of the read;
with ``data.out_of_range=drop`` such reads are left out and counted in one warning. Data sets that
declare no range (``target_range: null``) are not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from src.datamodules.readers import Records
from src.errors import ConfigError, DataError

log = logging.getLogger(__name__)

OUT_OF_RANGE_POLICIES = ("error", "drop")


def declared_range(target_range: Sequence[float] | None, policy: str) -> tuple[float, float] | None:
    """``(low, high)`` of ``data.target_range`` (None when undeclared); bad values -> ConfigError naming the key."""
    if policy not in OUT_OF_RANGE_POLICIES:
        raise ConfigError(f"data.out_of_range must be one of {', '.join(OUT_OF_RANGE_POLICIES)} (got {policy!r})")
    if target_range is None:
        return None
    try:
        low, high = (float(v) for v in target_range)
    except (TypeError, ValueError):
        raise ConfigError(f"data.target_range must be [low, high] or null (got {target_range!r})") from None
    if not low <= high:
        raise ConfigError(f"data.target_range=[{low:g}, {high:g}]: low must not exceed high")
    return low, high


def rows_in_range(records: Records, target_range: tuple[float, float] | None, policy: str) -> np.ndarray:
    """Which reads have every target within ``target_range`` (bool per read; all True without a range).

    ``policy="error"`` raises a DataError at the first read outside it; ``"drop"`` warns with the count.
    """
    n = len(records)
    if target_range is None:
        return np.ones(n, dtype=bool)
    low, high = target_range
    targets = np.asarray(records.targets).reshape(n, -1)
    inside = ((targets >= low) & (targets <= high)).all(axis=1)  # NaN compares False: not a number is outside
    if inside.all():
        return inside
    first = int(np.flatnonzero(~inside)[0])
    value = next(float(v) for v in targets[first] if not low <= v <= high)
    line = int(records.lines[first])
    if policy == "error":
        raise DataError(
            f"target {value:g} is outside the data set's declared range [{low:g}, {high:g}] (data.target_range; "
            "data.out_of_range=drop leaves such reads out)",
            records.path,
            line,
        )
    log.warning(
        "%s: %d of %d reads have a target outside the declared range [%g, %g] and are left out "
        "(data.out_of_range=drop; the first at line %d: %g)",
        records.path,
        int((~inside).sum()),
        n,
        low,
        high,
        line,
        value,
    )
    return inside
