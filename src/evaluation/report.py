"""Write a DREAM test-suite report: ``scores.json``, ``scores.md`` and one scatter PNG per subset."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from src.evaluation.dream_suite import MIN_ITEMS, SUBSET_WEIGHTS, TestSuite, subset_values
from src.utils.io import atomic_write_bytes, atomic_write_text, write_json


def _fmt(value: float | None, digits: int = 4) -> str:
    """Format a number for the table; None / NaN -> 'n/a'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def format_table(scores: dict[str, Any]) -> str:
    """Markdown table (subset, weight, n, Pearson r, r², Spearman rho) plus both scores and the weight they use.

    A subset that is not scored shows why instead of its correlations; the scores then say over which
    weight of the total they are averaged.
    """
    lines = [
        "| subset | weight | n | Pearson r | r² | Spearman rho |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    subsets = scores.get("subsets", {})
    missing = list(scores.get("missing", []))
    for name in [*SUBSET_WEIGHTS, *(s for s in subsets if s not in SUBSET_WEIGHTS)]:
        if name in subsets:
            row = subsets[name]
            r = row.get("r")
            r2 = None if r is None or not math.isfinite(r) else r * r
            label = f"{name} (Δ alt−ref)" if row.get("kind") == "pair" else name
            weight = f"{row.get('weight', SUBSET_WEIGHTS.get(name, float('nan'))):g}"
            if row.get("scored", r is not None) is False:
                lines.append(
                    f"| {label} | {weight} | {row.get('n', 0)} | not scored: {row.get('reason', '')} | — | — |"
                )
            else:
                lines.append(
                    f"| {label} | {weight} | {row.get('n', 0)} | {_fmt(r)} | {_fmt(r2)} | {_fmt(row.get('rho'))} |"
                )
        elif name in missing:
            lines.append(f"| {name} | {SUBSET_WEIGHTS[name]:g} | missing | — | — | — |")
    weight_sum = scores.get("weight_sum")
    total = scores.get("weight_total", sum(SUBSET_WEIGHTS.values()))
    over = f" over the scored subsets, weight {weight_sum:g} of {total:g}" if weight_sum is not None else ""
    lines.append("")
    lines.append(f"**Pearson score** (weighted r²{over}): {_fmt(scores.get('pearson_score'))}  ")
    lines.append(f"**Spearman score** (weighted rho{over}): {_fmt(scores.get('spearman_score'))}")
    if scores.get("partial"):
        not_scored = [n for n, row in subsets.items() if row.get("scored", row.get("r") is not None) is False]
        why = []
        if missing:
            why.append("missing subset file(s): " + ", ".join(missing))
        if not_scored:
            why.append(f"not scored (fewer than {MIN_ITEMS} items or a constant side): " + ", ".join(not_scored))
        lines.append("")
        lines.append(f"> **Partial score** — {'; '.join(why) or 'some subsets left out'}.")
    return "\n".join(lines) + "\n"


def scatter_title(name: str, n: int, row: dict[str, Any]) -> str:
    """The scatter plot's title: the subset, n and its correlations, or why it is not scored."""
    if row.get("scored", row.get("r") is not None) is False:
        return f"{name} (n={n})\nnot scored: {row.get('reason', 'no correlation')}"
    return f"{name} (n={n})\nr={_fmt(row.get('r'), 3)}  rho={_fmt(row.get('rho'), 3)}"


def _scatter_png(name: str, kind: str, pred: np.ndarray, meas: np.ndarray, row: dict[str, Any]) -> bytes:
    """Render one small predicted-vs-measured scatter plot to PNG bytes (Agg, no pyplot state)."""
    fig = Figure(figsize=(3.6, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if pred.size:
        size = 12.0 if pred.size < 2000 else 1.5
        ax.scatter(meas, pred, s=size, alpha=0.5 if pred.size < 2000 else 0.2, linewidths=0, rasterized=True)
        lo = float(min(meas.min(), pred.min()))
        hi = float(max(meas.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.6, linestyle="--")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    if kind == "pair":
        ax.set_xlabel("measured Δ (alt − ref)", fontsize=8)
        ax.set_ylabel("predicted Δ (alt − ref)", fontsize=8)
    else:
        ax.set_xlabel("measured expression", fontsize=8)
        ax.set_ylabel("predicted expression", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(scatter_title(name, int(pred.size), row), fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_report(
    scores: dict[str, Any], suite: TestSuite, predictions: np.ndarray, out_dir: str | Path
) -> dict[str, Path]:
    """Write ``scores.json``, ``scores.md`` and ``scatter_<subset>.png`` files into ``out_dir``.

    Every file is written atomically. Returns file name -> path (keys ``"scores.json"``,
    ``"scores.md"``, ``"scatter_<subset>.png"``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    path = out / "scores.json"
    write_json(path, scores)
    written[path.name] = path

    path = out / "scores.md"
    text = f"# DREAM test-suite scores\n\nTest folder: `{suite.folder}`\n\n{format_table(scores)}"
    atomic_write_text(path, text)
    written[path.name] = path

    rows = scores.get("subsets", {})
    for name, (kind, pred, meas) in subset_values(suite, predictions).items():
        path = out / f"scatter_{name}.png"
        atomic_write_bytes(path, _scatter_png(name, kind, pred, meas, rows.get(name, {})))
        written[path.name] = path
    return written
