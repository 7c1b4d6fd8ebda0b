"""Write a DREAM test-suite report: ``scores.json``, ``scores.md`` and one scatter PNG per subset."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from src.evaluation.dream_suite import SUBSET_WEIGHTS, TestSuite, subset_values
from src.utils.io import atomic_write_bytes, atomic_write_text, write_json


def _fmt(value: float | None, digits: int = 4) -> str:
    """Format a number for the table; None / NaN -> 'n/a'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def format_table(scores: dict[str, Any]) -> str:
    """Markdown table (subset, weight, n, Pearson r, r², Spearman rho) plus both scores and a partial note."""
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
            lines.append(
                f"| {label} | {row.get('weight', SUBSET_WEIGHTS.get(name, float('nan'))):g} | {row.get('n', 0)} "
                f"| {_fmt(r)} | {_fmt(r2)} | {_fmt(row.get('rho'))} |"
            )
        elif name in missing:
            lines.append(f"| {name} | {SUBSET_WEIGHTS[name]:g} | missing | — | — | — |")
    lines.append("")
    lines.append(f"**Pearson score** (weighted r²): {_fmt(scores.get('pearson_score'))}  ")
    lines.append(f"**Spearman score** (weighted rho): {_fmt(scores.get('spearman_score'))}")
    if scores.get("partial"):
        undefined = [n for n, row in subsets.items() if row.get("r") is None or row.get("rho") is None]
        why = []
        if missing:
            why.append("missing subset file(s): " + ", ".join(missing))
        if undefined:
            why.append("undefined correlation (n < 2 or zero variance): " + ", ".join(undefined))
        weight_sum = scores.get("weight_sum")
        total = sum(SUBSET_WEIGHTS.values())
        renorm = f" Weights renormalised over {weight_sum:g} of {total:g}." if weight_sum is not None else ""
        lines.append("")
        lines.append(f"> **Partial score** — {'; '.join(why) or 'some subsets left out'}.{renorm}")
    return "\n".join(lines) + "\n"


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
    ax.set_title(f"{name} (n={pred.size})\nr={_fmt(row.get('r'), 3)}  rho={_fmt(row.get('rho'), 3)}", fontsize=9)
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
