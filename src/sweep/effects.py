"""The study's answer: which block, objective and recipe make a model good, with uncertainty.

Computed from a sweep's ledger (the latest record of every job whose status is ``ok`` and whose
chosen metric is a finite number); :mod:`src.sweep.summarize` writes the results as
``effects.md`` / ``effects.csv`` / ``effects.png``.

*Factors* are the three block roles (``first``, ``core``, ``final``) and every other swept override
that takes at least two values among those jobs (``processing``, ``recipe``, ``aux_weights.recon``,
``recipe.lr``...). The ``seed`` is kept apart. Three analyses:

1. **Marginal means.** In a balanced sweep (every combination of the factors, the same number of
   jobs in each): for each level of each factor, the mean of the metric over every job at that
   level (all combinations of the other factors, all seeds) with a 95% Student-t interval over
   those jobs (``scipy.stats.t``); the interval says how much the metric varies *with the partners
   and the seed*, not only how well the mean is known. With missing cells (failed, collapsed,
   rejected or not run) a raw mean favours the levels whose weak partners failed, so the
   *estimated marginal means* are shown instead: an additive least-squares model (``y ~ first +
   core + final + ...``, statsmodels) predicts every cell of the full grid and a level's estimate is
   the mean of its cells' predictions, with the model's 95% interval. ``Effects.marginal_kind``
   says which; the raw mean is kept beside it.
2. **Variance decomposition.** An ordinary least-squares model of the metric on every factor, every
   pairwise interaction of factors and the seed (all categorical), analysed with
   ``statsmodels.stats.anova.anova_lm`` (Type II sums of squares). Each term's *share* is its sum of
   squares over the total sum of squares around the grand mean; the residual holds the
   higher-order interactions and the seed-to-seed noise that the seed's main effect does not
   explain. In a balanced sweep the shares add up to 1; in an unbalanced one Type II sums need
   not. Interactions are left out (largest first, and said so) when the sweep has too few jobs to
   estimate them with at least one residual degree of freedom.
3. **Paired comparisons.** The top configurations (a configuration is a job without its seed) by
   mean metric, each against the best: the mean over shared seeds of ``config - best`` with a 95%
   paired-t interval (``scipy.stats.ttest_rel``); with fewer than two shared seeds no interval
   exists and the table says so. For the DREAM test-suite scores (``test/pearson_score``,
   ``test/spearman_score``) a paired bootstrap over test sequences is added, from the per-sequence
   predictions each job saved (:func:`bootstrap_suite_difference`).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from src.lit_modules.metrics import higher_is_better
from src.sweep.ledger import COMBINATION_KEYS, is_replicate, job_key, latest_by_key

CONFIDENCE = 0.95
SEED = "seed"
DEFAULT_TOP = 5
DEFAULT_BOOTSTRAP = 1000
SUITE_METRICS = {"test/pearson_score": "pearson", "test/spearman_score": "spearman"}


def _plain(name: str) -> str:
    return name.lstrip("+~")


def _is_seed(name: str) -> bool:
    return _plain(name).rsplit(".", 1)[-1] == SEED


def _level(value: object) -> str:
    """Text of a factor level (``None`` -> ``"-"``), the same for ``1`` and ``"1"``."""
    return "-" if value is None else str(value)


def _metric_value(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# ----------------------------------------------------------------------------- the jobs


def jobs_frame(records: Iterable[Mapping[str, Any]], metric: str) -> pd.DataFrame:
    """One row per ``ok`` job with a finite ``metric``: factor levels (text), ``seed``, ``config``, ``y``, ``run_dir``.

    ``y`` is the run's best-epoch value ``<metric>_best`` when recorded (as the leaderboard ranks), else ``metric``.

    The latest record of each job key counts (a rerun replaces earlier attempts).
    """
    rows = []
    for record in latest_by_key(records).values():
        if record.get("status") != "ok":
            continue
        metrics = record.get("metrics") or {}
        # as the leaderboard ranks: the best epoch's value when the run recorded one (val/pearson_best)
        y = _metric_value(metrics.get(f"{metric}_best", metrics.get(metric)))
        if y is None:
            continue
        overrides = {_plain(k): v for k, v in (record.get("overrides") or {}).items()}
        combo = dict(record.get("combination") or {})
        row: dict[str, Any] = {name: _level(combo.get(name, overrides.get(name))) for name in COMBINATION_KEYS}
        row.update({k: _level(v) for k, v in overrides.items() if not is_replicate(k) and k not in COMBINATION_KEYS})
        row[SEED] = replicate_label(overrides)
        row["config"] = job_key({k: v for k, v in overrides.items() if not is_replicate(k)})
        row["y"] = y
        row["run_dir"] = str(record.get("run_dir") or "")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*COMBINATION_KEYS, SEED, "config", "y", "run_dir"])
    others = [c for c in frame.columns if c not in (*COMBINATION_KEYS, SEED, "config", "y", "run_dir")]
    frame[others] = frame[others].fillna("-")  # an axis absent from a job's overrides: its default
    return frame


def replicate_label(overrides: Mapping[str, object]) -> str:
    """The replicate a job is: its seed, or ``<seed>/pair<p>`` for a lentiMPRA fold pair (``data.fold_pair``)."""
    seed = _level(next((v for k, v in overrides.items() if _is_seed(k)), None))
    pair = next((v for k, v in overrides.items() if is_replicate(k) and not _is_seed(k)), None)
    return seed if pair is None else f"{seed}/pair{pair}"


def factors_of(frame: pd.DataFrame) -> list[str]:
    """The block roles, then the other swept axes (sorted), that take at least two levels in ``frame``."""
    others = sorted(c for c in frame.columns if c not in (*COMBINATION_KEYS, SEED, "config", "y", "run_dir"))
    return [name for name in (*COMBINATION_KEYS, *others) if frame[name].nunique() > 1]


# ----------------------------------------------------------------------------- marginal means


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Student-t interval of the mean of ``values``; ``None`` with fewer than two values."""
    arr = np.asarray(values, dtype=float)
    if arr.size < 2:
        return None
    with warnings.catch_warnings():  # scipy warns about precision when the values are nearly equal
        warnings.simplefilter("ignore", RuntimeWarning)
        sem = stats.sem(arr)
    if sem == 0:
        return float(arr.mean()), float(arr.mean())
    low, high = stats.t.interval(confidence, arr.size - 1, loc=arr.mean(), scale=sem)
    return float(low), float(high)


MARGINAL_COLUMNS = ["factor", "level", "mean", "ci_low", "ci_high", "n", "n_seeds", "raw_mean"]
RAW, ESTIMATED = "raw", "estimated"


def is_balanced(frame: pd.DataFrame, factors: Sequence[str]) -> bool:
    """Whether every combination of the factors' levels holds the same number of jobs (no cell missing)."""
    if not factors:
        return True
    cells = frame.groupby(list(factors)).size()
    return cells.nunique() == 1 and len(cells) == math.prod(frame[f].nunique() for f in factors)


def raw_marginal_means(frame: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Per factor and level: the mean over the level's jobs, 95% t over them, ``n`` jobs, ``n_seeds``."""
    rows = []
    for factor in factors:
        for level, group in frame.groupby(factor, sort=True):
            interval = t_interval(group["y"].to_numpy())
            rows.append(
                {
                    "factor": factor,
                    "level": level,
                    "mean": float(group["y"].mean()),
                    "ci_low": None if interval is None else interval[0],
                    "ci_high": None if interval is None else interval[1],
                    "n": int(len(group)),
                    "n_seeds": int(group[SEED].nunique()),
                    "raw_mean": float(group["y"].mean()),
                }
            )
    return pd.DataFrame(rows, columns=MARGINAL_COLUMNS)


def additive_design(frame: pd.DataFrame, levels: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Design matrix of the additive model: an intercept, then one indicator per non-first level of each factor."""
    columns = [np.ones(len(frame))]
    for factor, values in levels.items():
        columns += [(frame[factor] == level).to_numpy(float) for level in values[1:]]
    return np.column_stack(columns)


def estimated_marginal_means(frame: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame | None:
    """Estimated marginal means of an additive model; ``None`` when the jobs cannot fit it.

    The model is ordinary least squares of the metric on every factor as a categorical main effect
    (``y ~ first + core + final + ...``, statsmodels). It predicts every cell of the full balanced
    grid of the factors' levels, including the cells no job filled; a level's estimate is the mean of
    its cells' predictions, so each level is averaged over the same partners. The 95% interval is
    the model's (t with the residual degrees of freedom) of that linear combination of coefficients.
    """
    import itertools

    import statsmodels.api as sm

    if not factors:
        return None
    levels = {f: sorted(frame[f].unique()) for f in factors}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sm.OLS(frame["y"].to_numpy(float), additive_design(frame, levels)).fit()
    if model.df_resid < 1 or np.linalg.matrix_rank(additive_design(frame, levels)) < len(model.params):
        return None  # too few jobs, or a level confounded with others: the grid's cells are not estimable
    grid = pd.DataFrame(list(itertools.product(*levels.values())), columns=list(factors))
    design = additive_design(grid, levels)
    params, cov = np.asarray(model.params, float), np.asarray(model.cov_params(), float)
    t_crit = float(stats.t.ppf(0.5 + CONFIDENCE / 2, model.df_resid))
    raw = raw_marginal_means(frame, factors).set_index(["factor", "level"])
    rows = []
    for factor in factors:
        for level in levels[factor]:
            weights = design[(grid[factor] == level).to_numpy()].mean(axis=0)
            estimate = float(weights @ params)
            half = t_crit * math.sqrt(max(float(weights @ cov @ weights), 0.0))
            counts = raw.loc[(factor, level)]
            rows.append(
                {
                    "factor": factor,
                    "level": level,
                    "mean": estimate,
                    "ci_low": estimate - half,
                    "ci_high": estimate + half,
                    "n": int(counts["n"]),
                    "n_seeds": int(counts["n_seeds"]),
                    "raw_mean": float(counts["raw_mean"]),
                }
            )
    return pd.DataFrame(rows, columns=MARGINAL_COLUMNS)


def marginal_means(frame: pd.DataFrame, factors: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """Per factor and level: ``mean``, ``ci_low``/``ci_high``, ``n``, ``n_seeds``, ``raw_mean``; and which means.

    A balanced sweep gets the raw level means (there they equal the estimated marginal means) with
    the t interval over the level's jobs (:data:`RAW`). With missing or unequal cells a raw mean
    favours the levels whose weak partners failed, so the estimated marginal means of the additive
    model are shown instead (:data:`ESTIMATED`, :func:`estimated_marginal_means`) when the jobs can fit
    it; ``raw_mean`` keeps the raw mean either way.
    """
    if not is_balanced(frame, factors):
        estimated = estimated_marginal_means(frame, factors)
        if estimated is not None:
            return estimated, ESTIMATED
    return raw_marginal_means(frame, factors), RAW


# ----------------------------------------------------------------------------- variance decomposition


@dataclass
class Decomposition:
    """Variance shares: ``table`` columns ``term``, ``df``, ``sum_sq``, ``share``; ``notes`` in words."""

    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _term_label(term: str, names: Mapping[str, str]) -> str:
    return re.sub(r"C\((f\d+)\)", lambda m: names[m.group(1)], term).replace(":", " x ")


def variance_decomposition(frame: pd.DataFrame, factors: Sequence[str]) -> Decomposition:
    """Type II ANOVA shares of the metric's variance: factors, their pairwise interactions, the seed, residual."""
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    notes: list[str] = []
    columns = ["term", "df", "sum_sq", "share"]
    n = len(frame)
    total = float(((frame["y"] - frame["y"].mean()) ** 2).sum()) if n else 0.0
    terms = list(factors)
    if frame[SEED].nunique() > 1:
        terms.append(SEED)
    else:
        notes.append("one seed: the seed's share cannot be estimated (it is part of nothing)")
    if not terms or n < 3 or total == 0.0:
        notes.append("too few jobs or no variation in the metric: no decomposition")
        return Decomposition(pd.DataFrame(columns=columns), notes)

    safe = {name: f"f{i}" for i, name in enumerate(terms)}  # column names patsy can parse
    names = {v: k for k, v in safe.items()}
    data = frame[terms + ["y"]].rename(columns=safe)
    mains = [f"C({safe[t]})" for t in terms]
    # interactions of swept factors (not with the seed, whose interactions are the residual noise)
    pairs = [f"C({safe[a]}):C({safe[b]})" for i, a in enumerate(factors) for b in factors[i + 1 :]]

    def fit(interactions: list[str]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ols("y ~ " + " + ".join(mains + interactions), data=data).fit()

    levels = {t: data[safe[t]].nunique() for t in terms}

    def df_of(pair: str) -> int:
        a, b = re.findall(r"C\((f\d+)\)", pair)
        return (levels[names[a]] - 1) * (levels[names[b]] - 1)

    kept = sorted(pairs, key=df_of)  # the cheapest interactions survive first
    model = fit(kept)
    while kept and model.df_resid < 1:
        dropped = kept.pop()
        notes.append(f"left out {_term_label(dropped, names)}: too few jobs to estimate it")
        model = fit(kept)
    if model.df_resid < 1:
        notes.append("the main effects alone use every degree of freedom: no residual, no decomposition")
        return Decomposition(pd.DataFrame(columns=columns), notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anova = anova_lm(model, typ=2)
    rows = []
    for term, values in anova.iterrows():
        label = "residual" if term == "Residual" else _term_label(str(term), names)
        sum_sq = float(values["sum_sq"])
        rows.append({"term": label, "df": int(round(values["df"])), "sum_sq": sum_sq, "share": sum_sq / total})
    table = pd.DataFrame(rows, columns=columns)
    cells = frame.groupby(terms).size()
    if not (cells.nunique() == 1 and len(cells) == math.prod(levels.values())):
        notes.append(
            "the sweep is not a full balanced grid of every factor and seed: Type II sums of squares need not add "
            "up to the total, so the shares need not add up to 1"
        )
    return Decomposition(table, notes)


# ----------------------------------------------------------------------------- paired comparisons


def config_table(frame: pd.DataFrame, factors: Sequence[str], higher: bool = True) -> pd.DataFrame:
    """Per configuration: its factor levels, ``mean``, ``n_seeds``; best first (``higher``: larger is better)."""
    grouped = frame.groupby("config", sort=False)
    table = grouped.agg(mean=("y", "mean"), n_seeds=(SEED, "nunique")).reset_index()
    first = grouped.first().reset_index()
    for factor in factors:
        table[factor] = table["config"].map(dict(zip(first["config"], first[factor])))
    ascending = not higher
    return table.sort_values(["mean", "config"], ascending=[ascending, True], kind="stable").reset_index(drop=True)


BootstrapFn = Callable[[pd.DataFrame, pd.DataFrame], "tuple[float, float, float] | None"]


def paired_comparisons(
    frame: pd.DataFrame,
    factors: Sequence[str],
    higher: bool = True,
    top: int = DEFAULT_TOP,
    bootstrap: BootstrapFn | None = None,
) -> pd.DataFrame:
    """The ``top`` configurations against the best: ``diff`` = mean over shared seeds of ``config - best``.

    ``ci_low``/``ci_high``: 95% paired-t interval over the shared seeds, ``None`` (with ``note``)
    when fewer than two seeds are shared. ``bootstrap(best_jobs, config_jobs)``, when given,
    returns ``(diff, low, high)`` of a bootstrap over test sequences (``boot_*`` columns).
    """
    columns = [
        "rank",
        "config",
        *factors,
        "mean",
        "n_seeds",
        "shared_seeds",
        "diff",
        "ci_low",
        "ci_high",
        "boot_diff",
        "boot_low",
        "boot_high",
        "note",
    ]
    configs = config_table(frame, factors, higher)
    if configs.empty:
        return pd.DataFrame(columns=columns)
    best = configs.iloc[0]["config"]
    best_jobs = frame[frame["config"] == best]
    best_by_seed = best_jobs.groupby(SEED)["y"].mean()
    rows = []
    for rank, (_, row) in enumerate(configs.head(top).iterrows(), start=1):
        config = row["config"]
        jobs = frame[frame["config"] == config]
        by_seed = jobs.groupby(SEED)["y"].mean()
        shared = sorted(set(by_seed.index) & set(best_by_seed.index))
        out: dict[str, Any] = {
            "rank": rank,
            "config": config,
            **{f: row[f] for f in factors},
            "mean": float(row["mean"]),
            "n_seeds": int(row["n_seeds"]),
            "shared_seeds": len(shared),
            "diff": None,
            "ci_low": None,
            "ci_high": None,
            "boot_diff": None,
            "boot_low": None,
            "boot_high": None,
            "note": "",
        }
        if config == best:
            out["note"] = "best"
        elif shared:
            a = by_seed.loc[shared].to_numpy()
            b = best_by_seed.loc[shared].to_numpy()
            out["diff"] = float(np.mean(a - b))
            if len(shared) >= 2:
                if np.ptp(a - b) == 0:  # the same difference for every seed: a zero-width interval
                    low = high = out["diff"]
                else:
                    with warnings.catch_warnings():  # precision warning for nearly equal differences
                        warnings.simplefilter("ignore", RuntimeWarning)
                        low, high = stats.ttest_rel(a, b).confidence_interval(CONFIDENCE)
                out["ci_low"], out["ci_high"] = float(low), float(high)
            else:
                out["note"] = "one shared seed: no seed interval exists"
        else:
            out["note"] = "no seed shared with the best: no paired difference"
        if bootstrap is not None and config != best:
            boot = bootstrap(best_jobs, jobs)
            if boot is not None:
                out["boot_diff"], out["boot_low"], out["boot_high"] = boot
        rows.append(out)
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------- DREAM suite bootstrap


def _rowwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (broadcasting); NaN where a side is constant."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    num = (a * b).sum(axis=-1)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def bootstrap_suite_difference(
    suite: Any,
    best_predictions: Sequence[np.ndarray],
    other_predictions: Sequence[np.ndarray],
    kind: str = "pearson",
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    chunk: int = 50,
) -> tuple[float, float, float]:
    """Paired bootstrap over test sequences of ``score(other) - score(best)`` on a DREAM test suite.

    Each prediction list holds one array per seed (one value per suite position); a model's score
    in a replicate is the mean over its seeds of the challenge score (``kind`` ``"pearson"``:
    weighted r squared; ``"spearman"``: weighted rho). Every replicate resamples, with
    replacement and within each subset, the subset's items (positions, or alt/ref pairs), the same
    draw for both models. Returns ``(observed difference, 2.5th, 97.5th percentile)``; subsets whose
    score is undefined are left out of every replicate, as the challenge scoring does.
    """
    from src.evaluation.dream_suite import SUBSET_WEIGHTS, score_predictions, subset_values

    key = f"{kind}_score"
    observed = float(
        np.mean([score_predictions(suite, p)[key] for p in other_predictions])
        - np.mean([score_predictions(suite, p)[key] for p in best_predictions])
    )
    models = [np.stack([np.asarray(p, float) for p in best_predictions]), np.stack(other_predictions).astype(float)]
    per_model = [[subset_values(suite, p) for p in preds] for preds in models]
    names = list(per_model[0][0])
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        num = np.zeros((2, b))
        den = np.zeros(b)
        for name in names:
            measured = per_model[0][0][name][2]
            m = measured.size
            if m < 2:
                continue
            idx = rng.integers(0, m, size=(b, m))
            meas = measured[idx]  # (b, m)
            if kind == "spearman":
                meas = stats.rankdata(meas, axis=-1)
            weight = SUBSET_WEIGHTS[name]
            scores = []
            for model in per_model:
                pred = np.stack([seed_values[name][1] for seed_values in model])[:, idx]  # (S, b, m)
                if kind == "spearman":
                    pred = stats.rankdata(pred, axis=-1)
                r = _rowwise_corr(pred, meas[None])  # (S, b)
                scores.append(np.mean(r * r if kind == "pearson" else r, axis=0))  # NaN if any seed's is
            valid = np.isfinite(scores[0]) & np.isfinite(scores[1])
            for i in range(2):
                num[i] += np.where(valid, weight * np.nan_to_num(scores[i]), 0.0)
            den += np.where(valid, weight, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            diffs.append(num[1] / den - num[0] / den)
    values = np.concatenate(diffs)
    values = values[np.isfinite(values)]
    low, high = np.percentile(values, [2.5, 97.5]) if values.size else (math.nan, math.nan)
    return observed, float(low), float(high)


def _suite_predictions(run_dir: str) -> tuple[str, np.ndarray] | None:
    """``(test folder, predictions)`` saved by a job that scored the DREAM test suite, else ``None``."""
    import json
    from pathlib import Path

    try:
        summary = json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))
        test = summary["test"]
        predictions = np.load(test["predictions"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(test["folder"]), np.asarray(predictions, dtype=float).reshape(len(predictions), -1)[:, 0]


def suite_bootstrap(metric: str, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> BootstrapFn | None:
    """A :data:`BootstrapFn` for a DREAM test-suite score, reading each job's saved predictions; else ``None``.

    A comparison gets no bootstrap (``None``) when any of its jobs lacks its predictions or the two
    configurations were scored on different test folders.
    """
    kind = SUITE_METRICS.get(metric)
    if kind is None:
        return None
    from src.evaluation.dream_suite import load_test_suite

    suites: dict[str, Any] = {}

    def run(best_jobs: pd.DataFrame, other_jobs: pd.DataFrame) -> tuple[float, float, float] | None:
        loaded = [[_suite_predictions(d) for d in jobs["run_dir"]] for jobs in (best_jobs, other_jobs)]
        if any(item is None for side in loaded for item in side):
            return None
        folders = {folder for side in loaded for folder, _ in side}
        if len(folders) != 1:
            return None
        folder = folders.pop()
        if folder not in suites:
            suites[folder] = load_test_suite(folder)
        best, other = ([p for _, p in side] for side in loaded)
        return bootstrap_suite_difference(suites[folder], best, other, kind=kind, n_boot=n_boot, seed=seed)

    return run


# ----------------------------------------------------------------------------- everything at once


@dataclass
class Effects:
    """All three analyses of one metric of one sweep."""

    metric: str
    n_jobs: int
    n_configs: int
    seeds: list[str]
    factors: list[str]
    marginal: pd.DataFrame
    decomposition: Decomposition
    paired: pd.DataFrame
    higher: bool = True
    notes: list[str] = field(default_factory=list)
    marginal_kind: str = RAW  # RAW level means, or ESTIMATED marginal means of the additive model


def compute_effects(
    records: Iterable[Mapping[str, Any]],
    metric: str,
    top: int = DEFAULT_TOP,
    bootstrap: BootstrapFn | None = None,
    higher: bool | None = None,
) -> Effects:
    """Marginal means, variance decomposition and paired comparisons of ``metric`` over a sweep's records.

    ``higher`` (larger is better) defaults to the metric's own direction.
    """
    higher = higher_is_better(metric) if higher is None else higher
    frame = jobs_frame(records, metric)
    factors = factors_of(frame) if len(frame) else []
    seeds = sorted(frame[SEED].unique(), key=lambda s: (len(s), s)) if len(frame) else []
    notes = []
    if len(seeds) < 2 and len(frame):
        notes.append(
            "one seed per configuration: seed-to-seed noise cannot be measured, so no paired comparison has "
            "an interval; the marginal-mean intervals are over combinations only"
        )
    marginal, marginal_kind = marginal_means(frame, factors)
    return Effects(
        metric=metric,
        n_jobs=len(frame),
        n_configs=int(frame["config"].nunique()) if len(frame) else 0,
        seeds=seeds,
        factors=factors,
        marginal=marginal,
        marginal_kind=marginal_kind,
        decomposition=variance_decomposition(frame, factors),
        paired=paired_comparisons(frame, factors, higher, top=top, bootstrap=bootstrap),
        higher=higher,
        notes=notes,
    )


__all__ = [
    "CONFIDENCE",
    "SUITE_METRICS",
    "Decomposition",
    "Effects",
    "bootstrap_suite_difference",
    "suite_bootstrap",
    "compute_effects",
    "config_table",
    "estimated_marginal_means",
    "factors_of",
    "is_balanced",
    "jobs_frame",
    "marginal_means",
    "raw_marginal_means",
    "paired_comparisons",
    "t_interval",
    "variance_decomposition",
]
