"""Summarize a sweep: leaderboard (Markdown + CSV) and heatmaps from its ledger.

Usage::

    python -m src.sweep.summarize <sweep_dir> [--metric val/pearson] [--mode max|min] [--top 5] [--wandb]

``--metric`` may be any metric the ledger records: ``val/pearson`` (validation, the default),
``val/spearman``, ``val/mse``, ``val/pearson_best``, the DREAM test-suite scores
``test/pearson_score`` / ``test/spearman_score`` of jobs run with ``test_data=<folder>``, or the
``test/*`` metrics of a data set's test split. The leaderboard names the metric it ranks by.

A *configuration* is a job key without its seed. Seeds are aggregated as
mean ± sd (``ddof=1``; no sd for a single seed) over the jobs whose latest
ledger record is ``ok``. Configurations without any ``ok`` job (collapsed,
diverged, failed or rejected) are listed at the bottom with their error. The table
reports every metric the ledger holds, the ranked one first (by default the runs'
monitored metric, ``val/pearson``). Written into ``<sweep_dir>``:

* ``leaderboard.md`` and ``leaderboard.csv``;
* ``effects.md``, ``effects.csv`` and ``effects.png``: marginal means per block and per swept axis,
  variance decomposition and paired comparisons of the top configurations
  (:mod:`src.sweep.effects`);
* ``heatmap_<metric>.png``: one panel per final block, rows = first block,
  columns = core block; with one file per value of every other override that
  varies across the sweep (``heatmap_val_pearson__processing=bhi.png``). Cells
  without a value are marked and coloured by outcome (collapsed, diverged,
  failed, rejected, not run), with a legend.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.errors import LedgerCorruptError, LedgerError, first_line
from src.lit_modules.metrics import DEFAULT_MONITOR, MODES, higher_is_better
from src.sweep.effects import DEFAULT_BOOTSTRAP, DEFAULT_TOP, compute_effects, suite_bootstrap
from src.sweep.effects_report import write_effects
from src.sweep.halving_report import board_records, halving_markdown, is_halving, rank_by_rung, rung_records, rung_title
from src.sweep.ledger import (
    COMBINATION_KEYS,
    LEDGER_NAME,
    STATUSES,
    is_replicate,
    job_key,
    latest_by_key,
    read_ledger,
)
from src.sweep.lr_select import RETRIED_MARK, lr_mode, mark_retried, note_in_effects, select_lr
from src.sweep.table_layout import (
    constant_settings,
    epoch_note,
    metric_epoch,
    monitored_metrics,
    replicate_note,
    settings_line,
    swept_columns,
    table_metrics,
)
from src.utils.wandb_offline import finish_run, start_run

DEFAULT_METRIC = DEFAULT_MONITOR
ERROR_WIDTH = 100
PANELS_PER_ROW = 4  # heatmap panels (one per final block) per figure row
COLOUR_STEPS = 10  # a heatmap cell whose seed sd exceeds 1/COLOUR_STEPS of the colour range shows "±sd"

Row = dict[str, Any]


def _higher(metric: str, mode: str | None) -> bool:
    """``mode`` (``max``/``min``, e.g. the run's ``monitor.mode``) when given, else the metric's own direction."""
    return mode == "max" if mode else higher_is_better(metric)


def reported_metrics(metric: str, names: Iterable[str]) -> list[str]:
    """The ranked ``metric`` first, then every other metric the ledger holds, sorted."""
    return [metric, *sorted(set(names) - {metric})]


def _row_metrics(rows: Sequence[Row], metric: str) -> list[str]:
    names = {k[: -len("_mean")] for r in rows for k in r if k.endswith("_mean") and k != "seconds_mean"}
    return reported_metrics(metric, names)


def _plain(name: str) -> str:
    return name.lstrip("+~")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _finite_numbers(values: Iterable[object]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def _mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values, dtype=float)
    sd = float(np.std(arr, ddof=1)) if arr.size > 1 else None
    return float(arr.mean()), sd


def short_error(error: object, width: int = ERROR_WIDTH) -> str:
    """First meaningful line of an error message, truncated to ``width`` characters."""
    line = first_line(_text(error))
    return line if len(line) <= width else line[: width - 1] + "…"


def _status_summary(statuses: Iterable[str]) -> str:
    counts = Counter(statuses)
    order = [s for s in STATUSES if s in counts] + sorted(s for s in counts if s not in STATUSES)
    return ", ".join(f"{counts[s]} {s}" for s in order)


# How a heatmap cell without a value is drawn: (marker, face colour, hatch, legend text). A configuration with at
# least one ok seed shows its value instead; otherwise the first of these outcomes among its seeds decides.
CELL_STYLES = {
    "collapsed": ("c", "#f2b8b5", "", "c = collapsed (constant prediction)"),
    "diverged": ("d", "#c9a0dc", "", "d = diverged (NaN loss)"),
    "failed": ("x", "0.55", "", "x = failed"),
    "rejected": ("r", "white", "///", "r = rejected (not composable)"),
    "not run": ("", "white", "", "blank = not run"),
}


def cell_outcome(statuses: Iterable[str]) -> str:
    """``ok`` when any seed is ok, else the most telling outcome among collapsed, diverged, failed, rejected."""
    seen = set(statuses)
    if "ok" in seen:
        return "ok"
    for outcome in ("collapsed", "diverged", "failed", "rejected"):
        if outcome in seen:
            return outcome
    return "failed" if seen else "not run"


def _combination(record: Mapping[str, Any]) -> dict[str, Any]:
    combo = dict(record.get("combination") or {})
    overrides = {_plain(k): v for k, v in (record.get("overrides") or {}).items()}
    return {name: combo.get(name, overrides.get(name)) for name in COMBINATION_KEYS}


def _other_overrides(record: Mapping[str, Any]) -> dict[str, Any]:
    """Swept overrides that are neither the seed nor a block choice."""
    return {
        _plain(k): v
        for k, v in (record.get("overrides") or {}).items()
        if not is_replicate(k) and _plain(k) not in COMBINATION_KEYS
    }


def recorded_metrics(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the metrics with a number in at least one ``ok`` record (latest per job), sorted."""
    names = set()
    for record in latest_by_key(records).values():
        if record.get("status") == "ok":
            names.update(k for k, v in (record.get("metrics") or {}).items() if _finite_numbers([v]))
    return sorted(names)


def describe_metric(metric: str) -> str:
    """Where a metric comes from, in words."""
    if metric.startswith("val/"):
        return "validation split"
    if metric in ("test/pearson_score", "test/spearman_score"):
        return "DREAM test suite, challenge-weighted score"
    if metric.startswith("test/"):
        return "held-out test split"
    return "as recorded"


def _config_key(record: Mapping[str, Any]) -> str:
    overrides = record.get("overrides") or {}
    return job_key({_plain(k): v for k, v in overrides.items() if not is_replicate(k)})


def _fold_pair(record: Mapping[str, Any]) -> object:
    """The record's ``data.fold_pair`` override (a lentiMPRA replicate), else ``None``."""
    return {_plain(k): v for k, v in (record.get("overrides") or {}).items()}.get("data.fold_pair")


def _metric_value(record: Mapping[str, Any], metric: str, best_key: str | None) -> object:
    """``metric`` of a record; for the ranking metric its best epoch's value (``best_key``) when recorded."""
    metrics = record.get("metrics") or {}
    if best_key is not None and metrics.get(best_key) is not None:
        return metrics[best_key]
    return metrics.get(metric)


def ranking_note(rows: Sequence[Row], metric: str) -> str:
    """Which value of ``metric`` the ranking uses: the best epoch's (that picked the checkpoint) or the last."""
    if metric.startswith("test/"):
        return f"`{metric}` scores each run's best checkpoint (by its monitored validation metric)"
    runs = sum(int(r["n_seeds"]) for r in rows)
    best = sum(int(r.get("ranked_by_best") or 0) for r in rows)
    if runs and best == runs:
        return (
            f"`{metric}` is each run's best epoch (`{metric}_best`, the value that picked its best checkpoint); "
            "the other metrics are the last epoch's"
        )
    if best:
        return (
            f"`{metric}` is each run's best epoch (`{metric}_best`) for {best} of {runs} runs and the last "
            "epoch for the others (their records hold no best value)"
        )
    return f"`{metric}` is the last epoch's value (the records hold no `{metric}_best`)"


def build_leaderboard(
    records: Iterable[Mapping[str, Any]], metric: str = DEFAULT_METRIC, mode: str | None = None
) -> tuple[list[Row], list[str]]:
    """One row per configuration (latest record per job), ranked by mean ``metric``.

    Returns ``(rows, other_override_names)``. Each row holds ``rank`` (``None``
    for configurations without an ``ok`` job, which come last), the block
    names, the other overrides, ``n_seeds``, ``status``, ``<metric>_mean`` /
    ``<metric>_sd`` / ``<metric>_n`` for every reported metric, ``params``,
    ``seconds_mean``, ``peak_memory_mb_max``, ``error`` and ``config``.
    """
    latest = latest_by_key(records)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in latest.values():
        groups[_config_key(record)].append(record)
    others = sorted({name for rec in latest.values() for name in _other_overrides(rec)})
    metrics = reported_metrics(metric, (m for rec in latest.values() for m in (rec.get("metrics") or {})))

    rows: list[Row] = []
    best_key = f"{metric}_best"
    for config, runs in groups.items():
        ok = [r for r in runs if r.get("status") == "ok"]
        row: Row = {"rank": None, **_combination(runs[0])}
        extra = _other_overrides(runs[0])
        row.update({name: extra.get(name) for name in others})
        row["n_seeds"] = len(ok)
        row["status"] = _status_summary(str(r.get("status")) for r in runs)
        row["outcome"] = cell_outcome(str(r.get("status")) for r in runs)
        for m in metrics:
            values = _finite_numbers(_metric_value(r, m, best_key if m == metric else None) for r in ok)
            row[f"{m}_mean"], row[f"{m}_sd"] = _mean_sd(values)
            row[f"{m}_n"] = len(values)
        params = _finite_numbers(r.get("params") for r in ok) or _finite_numbers(r.get("params") for r in runs)
        row["params"] = round(float(np.mean(params))) if params else None
        row["seconds_mean"] = _mean_sd(_finite_numbers(r.get("seconds") for r in (ok or runs)))[0]
        peaks = _finite_numbers(r.get("peak_memory_mb") for r in runs)
        row["peak_memory_mb_max"] = max(peaks) if peaks else None
        errors = [short_error(r.get("error")) for r in runs if r.get("status") != "ok" and r.get("error")]
        row["error"] = errors[0] if errors else ""
        row["config"] = config
        row["ranked_by_best"] = sum(best_key in (r.get("metrics") or {}) for r in ok)
        row["n_fold_pairs"] = len({_fold_pair(r) for r in ok} - {None})
        rows.append(row)

    sign = -1.0 if _higher(metric, mode) else 1.0

    def order(row: Row) -> tuple[int, float, str]:
        value = row[f"{metric}_mean"]
        if not row["n_seeds"]:
            return 2, 0.0, row["config"]
        if value is None:
            return 1, 0.0, row["config"]
        return 0, sign * value, row["config"]

    rows.sort(key=order)
    for rank, row in enumerate((r for r in rows if r["n_seeds"]), start=1):
        row["rank"] = rank
    return rows, others


# ----------------------------------------------------------------------------- tables


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _mean_pm_sd(row: Row, metric: str) -> str:
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
    if mean is None:
        return "-"
    return f"{mean:.4f} ± {sd:.4f}" if sd is not None else f"{mean:.4f}"


def _md_cell(value: object) -> str:
    return _text(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], body: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(v) for v in cells) + " |" for cells in body]
    return lines


def _metric_header(metric: str, epoch: str) -> str:
    return f"{metric} ({epoch})"


def _ranked_table(
    ranked: Sequence[Row], axes: Sequence[str], metrics: Sequence[str], epochs: Mapping[str, str], count: str
) -> list[str]:
    """The ranked configurations: rank, swept axes, run count, status, each metric with its epoch, size, time."""
    header = ["rank", *axes, count, "status", *(_metric_header(m, epochs[m]) for m in metrics), "params", "seconds"]
    body = [
        [
            r["rank"],
            *(r[k] for k in axes),
            r["n_seeds"],
            r["status"],
            *(_mean_pm_sd(r, m) for m in metrics),
            "-" if r["params"] is None else f"{r['params']:,}",
            "-" if r["seconds_mean"] is None else f"{r['seconds_mean']:.1f}",
        ]
        for r in ranked
    ]
    return _md_table(header, body)


def _failed_table(failed: Sequence[Row], axes: Sequence[str]) -> list[str]:
    """Configurations without an ok run: swept axes, status, size and the first error."""
    header = [*axes, "status", "params", "error"]
    body = [
        [*(r[k] for k in axes), r["status"], "-" if r["params"] is None else f"{r['params']:,}", r["error"] or "-"]
        for r in failed
    ]
    return _md_table(header, body)


def leaderboard_markdown(
    rows: Sequence[Row], others: Sequence[str], metric: str, title: str = "", mode: str | None = None
) -> str:
    """The leaderboard as Markdown: constant settings in one line, then ranked configurations, then failed ones.

    Columns are the swept axes, the number of ok runs, the status and the metrics, each metric header
    naming the epoch its values come from (:func:`src.sweep.table_layout.metric_epoch`). Losses are left
    out when the final blocks' objectives differ; ``leaderboard.csv`` keeps every column.
    """
    direction = "higher" if _higher(metric, mode) else "lower"
    ranked = [r for r in rows if r["n_seeds"]]
    failed = [r for r in rows if not r["n_seeds"]]
    names = [*COMBINATION_KEYS, *others]
    axes = swept_columns(rows, names, keep=COMBINATION_KEYS)
    metrics, notes = table_metrics(ranked, metric, _row_metrics(rows, metric), others)
    epochs = {m: metric_epoch(m, metric, ranked) for m in metrics}
    pairs = any(r.get("n_fold_pairs") for r in rows)
    lines = [
        f"# Leaderboard{': ' + title if title else ''}",
        "",
        f"Ranked by mean `{metric}` ({describe_metric(metric)}) {replicate_note(rows)} ({direction} is better); "
        f"values are mean ± sd (ddof=1) over the runs that finished `ok` (no sd for a single run); "
        f"{ranking_note(rows, metric)}. "
        f"{len(ranked)} configurations ranked, {len(failed)} without any successful run.",
        "",
    ]
    monitored = monitored_metrics(m for r in ranked for m in _row_metrics([r], metric))
    for line in (settings_line(constant_settings(rows, names, keep=COMBINATION_KEYS)), epoch_note(epochs, monitored)):
        if line:
            lines += [line, ""]
    lines += [f"{note[0].upper()}{note[1:]}." for note in notes]
    if notes:
        lines.append("")
    lines += _ranked_table(ranked, axes, metrics, epochs, "n_runs" if pairs else "n_seeds")
    partial = [r for r in ranked if r["error"]]
    if partial:
        lines += ["", "Some seeds failed for: " + "; ".join(f"`{r['config']}` ({r['error']})" for r in partial)]
    if failed:
        lines += ["", "## Failed, collapsed, rejected or diverged", ""]
        lines += _failed_table(failed, axes)
    return "\n".join(lines) + "\n"


def csv_columns(others: Sequence[str], metric: str, rows: Sequence[Row] = ()) -> list[str]:
    """Column order of ``leaderboard.csv`` (and of the W&B table): ``metric`` first, then the rows' other metrics."""
    metrics = _row_metrics(rows, metric)
    stats = [f"{m}_{s}" for m in metrics for s in ("mean", "sd", "n")]
    tail = ["params", "seconds_mean", "peak_memory_mb_max", "error", "config"]
    return ["rank", *COMBINATION_KEYS, *others, "n_seeds", "status", *stats, *tail]


def write_csv(path: Path, rows: Sequence[Row], columns: Sequence[str]) -> None:
    """Write the rows with ``columns``; ``None`` becomes an empty cell."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])


# ----------------------------------------------------------------------------- heatmaps


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("_")


def _sorted_values(values: Iterable[object]) -> list[object]:
    return sorted(set(values), key=lambda v: (v is None, _text(v)))


def heatmap_figure(
    rows: Sequence[Row],
    metric: str,
    firsts: Sequence[object],
    cores: Sequence[object],
    finals: Sequence[object],
    title: str,
    vmin: float,
    vmax: float,
    mode: str | None = None,
):
    """A figure with one first x core panel per final block and a shared colorbar.

    Panels wrap after ``PANELS_PER_ROW`` finals, so an 8-family menu gives two rows of
    four 8 x 8 panels instead of one very wide row.
    """
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global backend switch, PNGs render with Agg
    from matplotlib.patches import Patch, Rectangle

    cells = {(r["first"], r["core"], r["final"]): r for r in rows}
    # bright = better, whatever the metric's direction; grey = no value
    cmap = matplotlib.colormaps["viridis" if _higher(metric, mode) else "viridis_r"].with_extremes(bad="0.82")
    ncols = min(len(finals), PANELS_PER_ROW)
    nrows = math.ceil(len(finals) / ncols)
    cell = 0.85 if len(cores) <= 5 else 0.7  # inches per cell; 8 x 8 panels stay legible at 150 dpi
    font = 9 if len(cores) <= 5 else 8
    width = ncols * (1.0 + cell * len(cores)) + 1.6
    height = 1.2 + nrows * (0.9 + 0.5 * len(firsts))
    fig = Figure(figsize=(max(width, 5.0), max(height, 3.0)), layout="constrained")
    grid_axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    axes = list(grid_axes.flat)[: len(finals)]
    for spare in list(grid_axes.flat)[len(finals) :]:
        spare.set_visible(False)  # an incomplete last row
    image = None
    any_partial = any_spread = any_retried = False
    step = (vmax - vmin) / COLOUR_STEPS
    shown: set[str] = set()
    for ax, final in zip(axes, finals):
        grid = np.full((len(firsts), len(cores)), np.nan)
        for i, first in enumerate(firsts):
            for j, core in enumerate(cores):
                row = cells.get((first, core, final))
                if row is not None and row[f"{metric}_mean"] is not None:
                    grid[i, j] = row[f"{metric}_mean"]
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        norm = image.norm
        for i, first in enumerate(firsts):
            for j, core in enumerate(cores):
                value = grid[i, j]
                if np.isnan(value):
                    cell = cells.get((first, core, final))
                    outcome = "not run" if cell is None else cell.get("outcome", "failed")
                    outcome = outcome if outcome in CELL_STYLES else "failed"
                    marker, face, hatch, _ = CELL_STYLES[outcome]
                    shown.add(outcome)
                    ax.add_patch(
                        Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=face, hatch=hatch, edgecolor="0.6", lw=0)
                    )
                    ax.text(j, i, marker, ha="center", va="center", color="0.15", fontsize=11)
                    continue
                row = cells[(first, core, final)]
                status = row.get("status")  # e.g. "2 ok, 1 collapsed": some seeds not ok
                partial = bool(row.get("error")) or (status is not None and status != f"{row.get('n_seeds')} ok")
                partial = row.get("partial", partial)  # a halving row says it (its status names the rung)
                any_partial |= partial
                shade = float(norm(value))
                dark = shade < 0.55 if _higher(metric, mode) else shade > 0.45
                colour = "white" if dark else "black"
                label = f"{value:.2f}" + ("*" if partial else "") + (RETRIED_MARK if row.get("retried") else "")
                any_retried = any_retried or bool(row.get("retried"))
                label += f" r{row['rung']}" if row.get("rung") is not None else ""  # halving: the rung reached
                spread = cell_spread_label(row, metric, step)
                any_spread |= "±" in spread
                ax.text(j, i - (0.14 if spread else 0), label, ha="center", va="center", fontsize=font, color=colour)
                if spread:
                    ax.text(j, i + 0.24, spread, ha="center", va="center", fontsize=font - 2.5, color=colour)
        ax.set_title(f"final = {_text(final) or '?'}", fontsize=11)
        ax.set_xticks(range(len(cores)), [_text(c) or "?" for c in cores], rotation=35, ha="right")
        ax.set_yticks(range(len(firsts)), [_text(f) or "?" for f in firsts])
        ax.set_xlabel("core block")
        ax.set_xticks(np.arange(-0.5, len(cores)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(firsts)), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
    for row_axes in grid_axes:
        row_axes[0].set_ylabel("first block")
    if image is not None:
        fig.colorbar(image, ax=axes, label=f"mean {metric}", shrink=0.9)
    legend = [
        Patch(facecolor=face, hatch=hatch, edgecolor="0.4", label=text)
        for outcome, (_, face, hatch, text) in CELL_STYLES.items()
        if outcome in shown
    ]
    if any_partial:
        legend.append(Patch(facecolor="none", edgecolor="none", label="* = some seeds not ok"))
    if any(r.get("rung") is not None for r in rows):  # successive halving (src/sweep/halving_report.py)
        legend.append(Patch(facecolor="none", edgecolor="none", label="rN = highest halving rung reached"))
    if any_retried:
        legend.append(
            Patch(facecolor="none", edgecolor="none", label=f"{RETRIED_MARK} = some seeds ok only on a retry")
        )
    if any(f"{metric}_n" in row for row in rows):
        text = "small type: n = ok seeds"
        if any_spread:
            text += f"; ±sd where the seeds' sd exceeds the colour step ({step:.3g} = range / {COLOUR_STEPS})"
        legend.append(Patch(facecolor="none", edgecolor="none", label=text))
    if legend:
        fig.legend(handles=legend, loc="outside lower center", ncol=min(len(legend), 2), fontsize=8, frameon=False)
    fig.suptitle(wrap_title(title, fig.get_figwidth()).replace("$", r"\$"), fontsize=12)  # "$" is not mathtext
    return fig


def cell_spread_label(row: Row, metric: str, step: float) -> str:
    """Small-type line of a heatmap cell: ``n=3``, plus ``±0.28`` when the seed sd exceeds the colour ``step``.

    ``""`` for a row without a count (a hand-built row).
    """
    n = row.get(f"{metric}_n")
    if n is None:
        return ""
    sd = row.get(f"{metric}_sd")
    spread = f" ±{sd:.2f}" if sd is not None and sd > step else ""
    return f"n={n}{spread}"


def wrap_title(title: str, width_inches: float, fontsize: float = 12.0) -> str:
    """``title`` broken into lines that fit the figure (a long override list is wrapped, not cut off)."""
    import textwrap

    chars = max(20, int(width_inches * 72 / (0.6 * fontsize)))  # ~0.6 em per character
    return "\n".join(textwrap.fill(line, chars) if line else line for line in title.split("\n"))


def write_heatmaps(
    sweep_dir: Path, rows: Sequence[Row], others: Sequence[str], metric: str, title: str = "", mode: str | None = None
) -> list[Path]:
    """Write the heatmap PNG(s) of ``metric``: one file per value of the varying other overrides."""
    firsts = _sorted_values(r["first"] for r in rows)
    cores = _sorted_values(r["core"] for r in rows)
    finals = _sorted_values(r["final"] for r in rows)
    values = [r[f"{metric}_mean"] for r in rows if r[f"{metric}_mean"] is not None]
    vmin, vmax = (min(values), max(values)) if values else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    varying = [name for name in others if len({_text(r[name]) for r in rows}) > 1]
    constant = [f"{name}={_text(rows[0][name])}" for name in others if name not in varying] if rows else []
    subsets: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        subsets[tuple(_text(row[name]) for name in varying)].append(row)

    stem = "heatmap_" + _slug(metric.replace("/", "_"))
    paths = []
    for values_key in sorted(subsets):
        fixed = [f"{name}={value}" for name, value in zip(varying, values_key)]
        name = stem + "".join(f"__{_slug(part)}" for part in fixed) + ".png"
        heading = f"{title}: mean {metric} over seeds" if title else f"mean {metric} over seeds"
        if fixed or constant:
            heading += " (" + ", ".join(fixed + constant) + ")"
        fig = heatmap_figure(subsets[values_key], metric, firsts, cores, finals, heading, vmin, vmax, mode)
        path = sweep_dir / name
        fig.savefig(path, dpi=150)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- W&B and entry points


def log_to_wandb(sweep_dir: Path, rows: Sequence[Row], columns: Sequence[str], heatmaps: Sequence[Path], metric: str):
    """Log the leaderboard table and the heatmaps to a W&B ``summary`` run (offline unless ``WANDB_MODE`` says)."""
    import wandb

    run = start_run(
        dir=str(sweep_dir),
        group=sweep_dir.name,
        job_type="summary",
        name=f"summary-{sweep_dir.name}",
        config={"metric": metric, "sweep_dir": str(sweep_dir)},
    )
    try:
        table = wandb.Table(columns=list(columns), data=[[row.get(c) for c in columns] for row in rows])
        payload: dict[str, Any] = {"leaderboard": table}
        payload.update({f"heatmap/{path.stem}": wandb.Image(str(path), caption=path.stem) for path in heatmaps})
        run.log(payload)
        best = next((r for r in rows if r["rank"] == 1), None)
        if best is not None:
            run.summary["best/config"] = best["config"]
            run.summary[f"best/{metric}"] = best[f"{metric}_mean"]
        run_dir = Path(run.dir).parent
    finally:
        finish_run()
    return run_dir


def summarize(
    sweep_dir: str | os.PathLike[str],
    metric: str = DEFAULT_METRIC,
    log_wandb: bool = False,
    mode: str | None = None,
    top: int = DEFAULT_TOP,
    n_boot: int = DEFAULT_BOOTSTRAP,
    select_peak: bool = False,
) -> dict:
    """Write the leaderboard, heatmaps and effects of a sweep; optionally log them to W&B.

    ``select_peak`` (``--select-lr``): per configuration only the runs at the peak with the best mean
    validation metric count (:func:`src.sweep.lr_select.select_lr`).

    Returns ``{"leaderboard_md", "leaderboard_csv", "heatmaps", "effects", "effect_paths", "paths",
    "rows", "markdown", "wandb_run_dir"}``. Raises :class:`LedgerError` (a ``SystemExit`` with
    status 2) when the ledger is missing or empty, or when its successful jobs never recorded ``metric``.
    """
    sweep_dir = Path(sweep_dir)
    ledger = sweep_dir / LEDGER_NAME
    if not ledger.is_file():
        raise LedgerError(f"no sweep ledger at {ledger} (has the sweep run any job?)")
    records = read_ledger(ledger)
    if not records:
        raise LedgerError(f"the sweep ledger {ledger} holds no records")
    recorded = recorded_metrics(records)
    if recorded and metric not in recorded:
        raise LedgerError(
            f"--metric {metric}: no successful job in {ledger} recorded it; recorded: {', '.join(recorded)}"
        )

    chosen_by, swept = "", records
    if select_peak:  # recipe.lr as a tuned axis: the best peak per configuration by a validation metric
        records, _, chosen_by = select_lr(records, metric, _higher(metric, mode))
    lr_note = lr_mode(swept, select_peak, chosen_by)
    halving = is_halving(records)  # successive halving: ranked by rung, effects of one rung (halving_report)
    rows, others = build_leaderboard(board_records(records) if halving else records, metric, mode)
    if halving:
        rows = rank_by_rung(rows, records, metric, _higher(metric, mode), _config_key)
    mark_retried(rows, records, _config_key)  # seeds ok only on a retry (recipe.retries) are named as such
    title = sweep_dir.resolve().name
    markdown = leaderboard_markdown(rows, others, metric, title, mode) + f"\n{lr_note}\n"
    markdown += halving_markdown(sweep_dir, records) if halving else ""
    md_path, csv_path = sweep_dir / "leaderboard.md", sweep_dir / "leaderboard.csv"
    md_path.write_text(markdown, encoding="utf-8")
    columns = csv_columns(others, metric, rows)
    write_csv(csv_path, rows, columns)
    heatmaps = write_heatmaps(sweep_dir, rows, others, metric, title, mode)
    bootstrap = suite_bootstrap(metric, n_boot=n_boot)
    effect_records = rung_records(records) if halving else records
    effects = compute_effects(effect_records, metric, top=top, bootstrap=bootstrap, higher=_higher(metric, mode))
    effect_paths = write_effects(sweep_dir, effects, rung_title(title, records) if halving else title)
    note_in_effects(effect_paths, lr_note)
    wandb_run_dir = log_to_wandb(sweep_dir, rows, columns, heatmaps, metric) if log_wandb else None
    return {
        "leaderboard_md": md_path,
        "leaderboard_csv": csv_path,
        "heatmaps": heatmaps,
        "effects": effects,
        "effect_paths": effect_paths,
        "paths": [md_path, csv_path, *heatmaps, *effect_paths],
        "rows": rows,
        "markdown": markdown,
        "wandb_run_dir": wandb_run_dir,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the Markdown leaderboard; list the written files on stderr."""
    parser = argparse.ArgumentParser(prog="python -m src.sweep.summarize", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help=f"sweep folder holding {LEDGER_NAME}")
    parser.add_argument(
        "--metric",
        default=DEFAULT_METRIC,
        help="any metric the ledger records, e.g. val/pearson (validation, the default), test/pearson_score "
        "(DREAM test suite of test_data=), test/pearson (a data set's test split)",
    )
    parser.add_argument(
        "--mode", choices=MODES, default=None, help="max or min is better (default: the metric's own direction)"
    )
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help="configurations compared with the best")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, help="bootstrap replicates (test suite)")
    parser.add_argument("--wandb", action="store_true", help="also log table and heatmaps to W&B (offline by default)")
    parser.add_argument(
        "--select-lr",
        action="store_true",
        help="a sweep over several recipe.lr: keep per configuration the peak with the best mean validation metric",
    )
    args = parser.parse_args(argv)
    try:
        result = summarize(
            args.sweep_dir,
            args.metric,
            args.wandb,
            mode=args.mode,
            top=args.top,
            n_boot=args.bootstrap,
            select_peak=args.select_lr,
        )
    except (LedgerError, LedgerCorruptError) as err:  # missing/empty ledger, or a corrupt line in it
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(result["markdown"], end="")
    for path in result["paths"]:
        print(f"wrote {path}", file=sys.stderr)
    if result["wandb_run_dir"] is not None:
        print(f"wandb run in {result['wandb_run_dir']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
