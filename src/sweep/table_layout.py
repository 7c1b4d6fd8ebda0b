"""What a leaderboard table shows: swept columns, constant settings, each metric's epoch, comparable losses.

A sweep's constant overrides (``data``, ``data.path``, ``recipe.steps_per_epoch``...) are the same in
every row: :func:`constant_settings` lifts them into one line above the table and :func:`swept_columns`
keeps the axes that vary. :func:`metric_epoch` says which epoch a metric column comes from (the best
epoch by the monitored metric, the last epoch, or the best checkpoint for test scores), and
:func:`comparable_losses` tells whether ``val/loss`` may be compared across rows: final blocks with
different objectives (soft-bin KL, Huber, MSE, or the same loss on a transformed target) report losses
on different scales, so a ranking table leaves the loss out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

FINAL_CONFIGS = Path(__file__).resolve().parents[2] / "conf" / "final"
# Tags for where a metric column's value comes from (the table header shows them in brackets).
BEST_EPOCH, LAST_EPOCH, BEST_CHECKPOINT, MIXED = "best epoch", "last epoch", "best checkpoint", "mixed epochs"

Row = Mapping[str, Any]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def constant_settings(rows: Sequence[Row], names: Sequence[str], keep: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(name, value)`` of the ``names`` whose value is the same in every row, in ``names`` order.

    ``keep`` names stay columns even when constant, but only while the table has a single row (a
    one-row table still names its model); with several rows any constant name moves to the line.
    """
    kept = set(keep) if len(rows) < 2 else set()
    out = []
    for name in names:
        values = {_text(row.get(name)) for row in rows}
        if rows and len(values) == 1 and name not in kept:
            out.append((name, values.pop()))
    return out


def swept_columns(rows: Sequence[Row], names: Sequence[str], keep: Iterable[str] = ()) -> list[str]:
    """The ``names`` that vary across ``rows`` (plus ``keep`` names of a one-row table), in order."""
    constant = {name for name, _ in constant_settings(rows, names, keep)}
    return [name for name in names if name not in constant]


def settings_line(settings: Sequence[tuple[str, str]]) -> str:
    """``Constant settings (every row): `a=1`, `b=x`.`` or ``""`` when there are none."""
    if not settings:
        return ""
    return "Constant settings (every row): " + ", ".join(f"`{name}={value or '-'}`" for name, value in settings) + "."


# ----------------------------------------------------------------------------- epochs


def metric_epoch(metric: str, ranked: str, rows: Sequence[Row]) -> str:
    """Which epoch the leaderboard's value of ``metric`` comes from.

    The ranked metric is each run's best epoch when its record holds ``<ranked>_best`` (``rows`` count
    those runs in ``ranked_by_best``); ``*_best`` metrics are best epochs; ``test/*`` metrics score the
    best checkpoint; every other metric is the last epoch's value.
    """
    if metric.startswith("test/"):
        return BEST_CHECKPOINT
    if metric == ranked:
        runs = sum(int(r.get("n_seeds") or 0) for r in rows)
        best = sum(int(r.get("ranked_by_best") or 0) for r in rows)
        return BEST_EPOCH if runs and best == runs else LAST_EPOCH if not best else MIXED
    if metric.endswith("_best"):
        return BEST_EPOCH
    return LAST_EPOCH


def monitored_metrics(names: Iterable[str]) -> list[str]:
    """The monitored metric(s) of the runs: every ``<metric>_best`` the records hold, without ``_best``."""
    return sorted({name.removesuffix("_best") for name in names if name.endswith("_best")})


def epoch_note(epochs: Mapping[str, str], monitored: Sequence[str]) -> str:
    """One sentence naming the metrics of each epoch, e.g. ``best epoch (by `val/pearson`): ...; last epoch: ...``."""
    by = " or ".join(f"`{m}`" for m in monitored) or "the monitored metric"
    groups: dict[str, list[str]] = {}
    for metric, epoch in epochs.items():
        groups.setdefault(epoch, []).append(f"`{metric}`")
    labels = {
        BEST_EPOCH: f"best epoch (by {by}, the epoch of the best checkpoint)",
        BEST_CHECKPOINT: "scored on the best checkpoint",
        LAST_EPOCH: "last epoch",
        MIXED: "best epoch where the record holds it, else the last",
    }
    parts = [
        f"{labels[e]}: {', '.join(groups[e])}" for e in (BEST_EPOCH, BEST_CHECKPOINT, LAST_EPOCH, MIXED) if e in groups
    ]
    return ("Columns by epoch: " + "; ".join(parts) + ".") if parts else ""


# ----------------------------------------------------------------------------- losses


def is_loss(metric: str) -> bool:
    """``val/loss``, ``train/loss``, ``val/loss_recon``...: a value on the objective's own scale."""
    name = metric.rsplit("/", 1)[-1]
    return name == "loss" or name.startswith("loss_")


@lru_cache(maxsize=64)
def final_objective(final: str) -> str | None:
    """A short description of the objective of final block ``final`` (``conf/final/<final>.yaml``), else ``None``."""
    from omegaconf import OmegaConf

    path = FINAL_CONFIGS / f"{final}.yaml"
    try:
        objective = OmegaConf.to_container(OmegaConf.load(path)).get("objective")  # type: ignore[union-attr]
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(objective, dict):
        return None
    kind = str(objective.get("_target_", "?")).rsplit(".", 1)[-1]
    if kind == "SoftBinObjective":
        return f"soft-bin KL ({objective.get('n_bins', '?')} bins)"
    details = {k: v for k, v in objective.items() if k not in ("_target_", "loss")}
    loss = objective.get("loss", kind)
    return f"{loss}" + (" (" + ", ".join(f"{k}={v}" for k, v in sorted(details.items())) + ")" if details else "")


def _objective_of(row: Row, override_names: Sequence[str]) -> str:
    """The row's objective: its final block's (or ``unknown objective``), plus ``final.*`` overrides that change it."""
    base = final_objective(_text(row.get("final"))) or "unknown objective"
    changed = [f"{n}={_text(row.get(n))}" for n in override_names if n.startswith("final.") and row.get(n) is not None]
    return base + (" + " + ", ".join(changed) if changed else "")


def comparable_losses(rows: Sequence[Row], override_names: Sequence[str] = ()) -> tuple[bool, str]:
    """Whether the rows' losses share one objective; else ``(False, why)`` naming each final's objective.

    One final block (with the same ``final.*`` overrides) is comparable with itself even when its
    config is not in ``conf/final``; several finals are comparable only when their known objectives agree.
    """
    signatures = {(_text(r.get("final")), _objective_of(r, override_names)) for r in rows}
    objectives = {objective for _, objective in signatures}
    if len(signatures) <= 1 or (len(objectives) == 1 and "unknown objective" not in next(iter(objectives))):
        return True, ""
    named = ", ".join(f"{final or '?'}: {obj}" for final, obj in sorted(signatures))
    return False, f"the final blocks train different (or unknown) objectives ({named})"


def table_metrics(
    rows: Sequence[Row], ranked: str, metrics: Sequence[str], override_names: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """The metric columns a ranking table shows, and a note per left-out group.

    Left out: ``<ranked>_best`` when the ranked column already is every run's best epoch (the same
    numbers twice), and every loss when the rows' objectives differ.
    """
    shown = list(metrics)
    notes = []
    if metric_epoch(ranked, ranked, rows) == BEST_EPOCH and f"{ranked}_best" in shown:
        shown.remove(f"{ranked}_best")
    losses = [m for m in shown if is_loss(m) and m != ranked]
    if losses:
        same, why = comparable_losses(rows, override_names)
        if not same:
            shown = [m for m in shown if m not in losses]
            names = ", ".join(f"`{m}`" for m in losses)
            notes.append(f"{names} left out: {why}, so the losses are on different scales (they stay in the CSV)")
    return shown, notes


def replicate_note(rows: Sequence[Row]) -> str:
    """How the rows' runs replicate a configuration: over seeds, or over lentiMPRA fold pairs and seeds."""
    pairs = max((int(r.get("n_fold_pairs") or 0) for r in rows), default=0)
    if not pairs:
        return "over seeds"
    return (
        f"over runs: up to {pairs} ordered fold pairs (`data.fold_pair`: test fold k, validation fold j, k != j) "
        "times the seeds"
    )
