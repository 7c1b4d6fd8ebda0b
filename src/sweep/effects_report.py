"""Write the effects of a sweep (:mod:`src.sweep.effects`) as ``effects.md``, ``effects.csv`` and ``effects.png``."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.sweep.effects import CONFIDENCE, ESTIMATED, Effects

CSV_COLUMNS = (
    "section",
    "factor",
    "level",
    "estimate",
    "ci_low",
    "ci_high",
    "n",
    "n_seeds",
    "df",
    "sum_sq",
    "share",
    "boot_diff",
    "boot_low",
    "boot_high",
    "note",
    "raw_mean",
)


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _interval(low: Any, high: Any) -> str:
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return "-"
    return f"[{low:.4f}, {high:.4f}]"


def _table(header: Sequence[str], body: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in body]


def _none(value: Any) -> Any:
    """pandas' NaN/None -> None."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def marginal_explanation(effects: Effects) -> str:
    """Which marginal means the report shows (raw level means or estimated marginal means), in words."""
    pct = int(CONFIDENCE * 100)
    if effects.marginal_kind == ESTIMATED:
        cells = math.prod(int(n) for n in effects.marginal.groupby("factor")["level"].nunique())
        why = (
            f"only {effects.n_configs} of its {cells} combinations have a successful job"
            if effects.n_configs < cells
            else "its combinations hold unequal numbers of successful jobs"
        )
        return (
            f"**Estimated marginal means** (the sweep is not a full balanced grid: {why}): an additive "
            "least-squares model of the metric on "
            f"{' + '.join(effects.factors)} (statsmodels) predicts every cell of the full grid, and a level's "
            f"estimate is the mean of its cells' predictions, so every level is averaged over the same partners. "
            f"The {pct}% interval is the model's. The raw mean over the level's jobs, which favours levels whose "
            "weak partners failed, is shown beside it."
        )
    return (
        f"Raw means: the mean of the metric over every job with that level (all partners, all seeds; the sweep is "
        f"a balanced grid, so these equal the estimated marginal means) and its {pct}% Student-t interval over "
        "those jobs: the interval shows how much the level's result depends on its partners and the seed."
    )


def effects_markdown(effects: Effects, title: str = "") -> str:
    """The three analyses as Markdown, with what each number means."""
    pct = int(CONFIDENCE * 100)
    direction = "higher" if effects.higher else "lower"
    lines = [
        f"# Effects{': ' + title if title else ''}",
        "",
        f"Metric: `{effects.metric}` ({direction} is better). {effects.n_jobs} successful jobs, "
        f"{effects.n_configs} configurations, {len(effects.seeds)} seed(s) "
        f"({', '.join(effects.seeds) or '-'}). Factors that vary: {', '.join(effects.factors) or 'none'}.",
        "",
    ]
    lines += [f"- {note}" for note in effects.notes]
    if effects.notes:
        lines.append("")
    lines += ["## Marginal means", "", marginal_explanation(effects), ""]
    estimated = effects.marginal_kind == ESTIMATED
    body = [
        [r.factor, r.level, _num(r.mean), _interval(_none(r.ci_low), _none(r.ci_high)), r.n, r.n_seeds]
        + ([_num(r.raw_mean)] if estimated else [])
        for r in effects.marginal.itertuples(index=False)
    ]
    header = ["factor", "level", "estimated mean" if estimated else "mean", f"{pct}% interval", "jobs", "seeds"]
    header += ["raw mean"] if estimated else []
    lines += _table(header, body) if body else ["(none)"]
    lines += [
        "",
        "## Variance decomposition",
        "",
        "Share of the metric's total sum of squares (around the grand mean) explained by each factor, each pairwise "
        "interaction and the seed: Type II ANOVA of a least-squares model with all of them as categorical terms "
        "(statsmodels). The residual holds higher-order interactions and seed noise not explained by the seed's "
        "main effect.",
        "",
    ]
    lines += [f"- {note}" for note in effects.decomposition.notes]
    if effects.decomposition.notes:
        lines.append("")
    table = effects.decomposition.table
    body = [[r.term, r.df, _num(r.sum_sq, 6), f"{100 * r.share:.1f}%"] for r in table.itertuples(index=False)]
    lines += _table(["term", "df", "sum of squares", "share"], body) if body else ["(no decomposition)"]
    lines += [
        "",
        "## Top configurations against the best",
        "",
        f"Difference = mean over the seeds both share of (configuration - best); {pct}% paired-t interval over "
        "those seeds. An interval that contains 0 means the sweep cannot tell the two apart from seed noise.",
    ]
    paired = effects.paired
    has_boot = "boot_diff" in paired and paired["boot_diff"].notna().any()
    if has_boot:
        lines.append(
            f"Bootstrap: paired resampling of the test sequences (within each test subset), {pct}% percentile "
            "interval of the difference in the mean-over-seeds score."
        )
    lines.append("")
    header = ["rank", *effects.factors, "mean", "seeds", "difference", f"{pct}% interval (seeds)"]
    if has_boot:
        header += ["bootstrap difference", f"{pct}% interval (sequences)"]
    header.append("note")
    body = []
    for r in paired.to_dict("records"):
        cells = [r["rank"], *(r[f] for f in effects.factors), _num(r["mean"]), r["n_seeds"]]
        cells += [_num(_none(r["diff"])), _interval(_none(r["ci_low"]), _none(r["ci_high"]))]
        if has_boot:
            cells += [_num(_none(r["boot_diff"])), _interval(_none(r["boot_low"]), _none(r["boot_high"]))]
        cells.append(r["note"] or "")
        body.append(cells)
    lines += _table(header, body) if body else ["(no successful configuration)"]
    return "\n".join(lines) + "\n"


def write_effects_csv(path: Path, effects: Effects) -> None:
    """One long table: ``section`` is ``marginal``, ``variance`` or ``paired``."""
    rows: list[dict[str, Any]] = []
    for r in effects.marginal.to_dict("records"):
        rows.append(
            {
                "section": "marginal",
                "factor": r["factor"],
                "level": r["level"],
                "estimate": r["mean"],
                "ci_low": _none(r["ci_low"]),
                "ci_high": _none(r["ci_high"]),
                "n": r["n"],
                "n_seeds": r["n_seeds"],
                "note": f"{effects.marginal_kind} marginal mean",
                "raw_mean": r["raw_mean"],
            }
        )
    for r in effects.decomposition.table.to_dict("records"):
        rows.append(
            {"section": "variance", "factor": r["term"], "df": r["df"], "sum_sq": r["sum_sq"], "share": r["share"]}
        )
    for r in effects.paired.to_dict("records"):
        rows.append(
            {
                "section": "paired",
                "factor": "config",
                "level": r["config"],
                "estimate": _none(r["diff"]),
                "ci_low": _none(r["ci_low"]),
                "ci_high": _none(r["ci_high"]),
                "n": r["shared_seeds"],
                "n_seeds": r["n_seeds"],
                "boot_diff": _none(r["boot_diff"]),
                "boot_low": _none(r["boot_low"]),
                "boot_high": _none(r["boot_high"]),
                "note": r["note"],
            }
        )
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS})


def effects_figure(effects: Effects, title: str = ""):
    """One panel per factor (level means with their intervals) and one of the variance shares."""
    from matplotlib.figure import Figure

    factors = effects.factors
    n_panels = len(factors) + 1
    cols = min(n_panels, 4)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(3.6 * cols, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    marginal = effects.marginal
    grand = effects_grand_mean(effects)
    for ax, factor in zip(axes, factors):
        part = marginal[marginal["factor"] == factor]
        x = np.arange(len(part))
        means = part["mean"].to_numpy(float)
        low = np.array([_none(v) if _none(v) is not None else m for v, m in zip(part["ci_low"], means)], float)
        high = np.array([_none(v) if _none(v) is not None else m for v, m in zip(part["ci_high"], means)], float)
        ax.errorbar(x, means, yerr=[means - low, high - means], fmt="o", capsize=4, color="tab:blue")
        if math.isfinite(grand):
            ax.axhline(grand, color="0.6", linestyle="--", linewidth=1)
        ax.set_xticks(x, [str(v) for v in part["level"]], rotation=30, ha="right")
        ax.set_title(factor, fontsize=11)
        ax.set_ylabel(f"mean {effects.metric}", fontsize=9)
    share_ax = axes[len(factors)]
    table = effects.decomposition.table
    if len(table):
        y = np.arange(len(table))
        share_ax.barh(y, 100 * table["share"].to_numpy(float), color="tab:orange")
        share_ax.set_yticks(y, list(table["term"]), fontsize=8)
        share_ax.invert_yaxis()
        share_ax.set_xlabel("% of variance (Type II SS / total SS)", fontsize=9)
    else:
        share_ax.text(0.5, 0.5, "no decomposition", ha="center", va="center")
        share_ax.set_axis_off()
    share_ax.set_title("variance decomposition", fontsize=11)
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    pct = int(CONFIDENCE * 100)
    heading = f"{title}: " if title else ""
    what = (
        "estimated marginal means (additive model over the full grid; model's"
        if effects.marginal_kind == ESTIMATED
        else "marginal means (t over combinations and seeds;"
    )
    fig.suptitle(f"{heading}{what} {pct}% intervals) of {effects.metric}; dashed: grand mean", fontsize=11)
    return fig


def effects_grand_mean(effects: Effects) -> float:
    """Grand mean: over the jobs (raw level means weighted by jobs), or over the full grid (estimated means)."""
    part = effects.marginal
    if not len(part):
        return float("nan")
    first = part[part["factor"] == part["factor"].iloc[0]]
    if effects.marginal_kind == ESTIMATED:  # the grid's mean prediction: every level weighs the same
        return float(np.mean(first["mean"]))
    return float(np.average(first["mean"], weights=first["n"]))


def write_effects(sweep_dir: Path, effects: Effects, title: str = "") -> list[Path]:
    """Write ``effects.md``, ``effects.csv`` and (with at least one factor) ``effects.png`` into ``sweep_dir``."""
    md, table = sweep_dir / "effects.md", sweep_dir / "effects.csv"
    md.write_text(effects_markdown(effects, title), encoding="utf-8")
    write_effects_csv(table, effects)
    paths = [md, table]
    if effects.factors or len(effects.decomposition.table):
        png = sweep_dir / "effects.png"
        effects_figure(effects, title).savefig(png, dpi=130)
        paths.append(png)
    return paths
