"""The learning rate in a sweep's summary: which mode set the peaks, ``--select-lr``, retried cells.

* :func:`lr_mode`: one line for the effects report and the leaderboard saying how the peaks were set:
  the shared recipe (one peak for every configuration), ``recipe.lr=auto`` (a range test per configuration),
  or selected per configuration from a grid (``--select-lr``).
* :func:`select_lr` (``summarize --select-lr``): for a sweep over several peaks (``recipe.lr=0.0005,0.002,0.005``),
  per configuration (all other overrides equal) the peak with the best **validation** metric averaged over seeds
  is kept and the other peaks' runs are left out of the leaderboard, the heatmaps and the effects. The choice
  reads only a ``val/`` metric: the ranked metric when it is one, else the runs' monitored ``val/pearson``;
  a test metric is never read (it would choose on the data the table then reports).
* :func:`mark_retried`: a configuration with seeds that are ``ok`` only on a retry (``recipe.retries``) says so
  in its status (``3 ok (1 retried)``) and its heatmap cell (``†``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from src.lit_modules.metrics import DEFAULT_MONITOR
from src.sweep.ledger import is_replicate, job_key, latest_by_key

LR_KEY = "recipe.lr"
RETRIED_MARK = "†"


def _overrides(record: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lstrip("+~"): v for k, v in (record.get("overrides") or {}).items()}


def peak_of(record: Mapping[str, Any]) -> Any:
    """The swept ``recipe.lr`` of a record (``None`` when the sweep did not set it)."""
    return _overrides(record).get(LR_KEY)


def _group_key(record: Mapping[str, Any]) -> str:
    """The configuration without its seed and without its peak."""
    return job_key({k: v for k, v in _overrides(record).items() if k != LR_KEY and not is_replicate(k)})


def selection_metric(metric: str) -> str:
    """The validation metric the choice reads: ``metric`` when it is a ``val/`` metric, else ``val/pearson``."""
    return metric if metric.startswith("val/") else DEFAULT_MONITOR


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def select_lr(
    records: Sequence[Mapping[str, Any]], metric: str, higher: bool
) -> tuple[list[Mapping[str, Any]], dict[str, Any], str]:
    """``(records of the selected peaks, {configuration: selected peak}, the validation metric used)``.

    Per configuration, the peak whose ``ok`` runs have the best mean validation metric (``higher`` is better, or
    lower) is kept with all its records; a configuration swept at one peak only is kept as it is.
    """
    chosen_by = selection_metric(metric)
    sign = 1.0 if (higher if chosen_by == metric else True) else -1.0  # the fallback val/pearson: higher
    scores: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in latest_by_key(records).values():
        if record.get("status") != "ok":
            continue
        value = _number((record.get("metrics") or {}).get(chosen_by))  # a val/ metric only
        if value is not None:
            scores[_group_key(record)][_text(peak_of(record))].append(value)
    chosen: dict[str, Any] = {}
    for group, by_peak in scores.items():
        chosen[group] = max(by_peak, key=lambda peak: (sign * sum(by_peak[peak]) / len(by_peak[peak]), peak))
    kept = [r for r in records if _group_key(r) not in chosen or _text(peak_of(r)) == chosen[_group_key(r)]]
    return kept, chosen, chosen_by


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def lr_mode(records: Iterable[Mapping[str, Any]], selected: bool = False, chosen_by: str = "") -> str:
    """How the sweep's peaks were set, in one sentence."""
    peaks = sorted({_text(peak_of(r)) for r in records} - {""})
    if selected and len(peaks) > 1:
        return (
            f"Learning rate: selected per configuration from the grid recipe.lr={','.join(peaks)} by the best mean "
            f"validation `{chosen_by}` over seeds (--select-lr; never a test metric); only the selected runs count."
        )
    if peaks == ["auto"]:
        return "Learning rate: recipe.lr=auto, a range test per configuration (its peak in each run's ledger record)."
    if "auto" in peaks:
        return f"Learning rate: a mix of recipe.lr=auto and set peaks ({', '.join(peaks)}); compare with care."
    if len(peaks) > 1:
        return (
            f"Learning rate: swept as an axis (recipe.lr={','.join(peaks)}); --select-lr picks one per configuration."
        )
    shown = f"recipe.lr={peaks[0]}" if peaks else "the recipe's own peak"
    return f"Learning rate: the shared recipe, one peak for every configuration ({shown})."


def mark_retried(rows: list[dict[str, Any]], records: Iterable[Mapping[str, Any]], config_key: Any) -> None:
    """Name the seeds that are ``ok`` only on a retry in each row's status (and flag the heatmap cell)."""
    retried: dict[str, int] = defaultdict(int)
    for record in latest_by_key(records).values():
        if record.get("status") == "ok" and int(record.get("attempt") or 1) > 1:
            retried[config_key(record)] += 1
    for row in rows:
        n = retried.get(row.get("config"), 0)
        if not n:
            continue
        status = row.get("status")
        row.setdefault("partial", bool(row.get("error")) or (status is not None and status != f"{row['n_seeds']} ok"))
        row["status"] = f"{status} ({n} retried)"
        row["retried"] = n


def note_in_effects(paths: Iterable[object], note: str) -> None:
    """Append the learning-rate mode to the effects report (``effects.md``) among ``paths``."""
    from pathlib import Path

    for path in paths:
        path = Path(str(path))
        if path.name == "effects.md" and path.is_file():
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(f"\n{note}\n")
