"""DREAM test-suite scores and scatter plots into a W&B run (offline unless the user chose a mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from src.utils.wandb_offline import finish_run, start_run


def _flat_scores(scores: dict[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key in ("pearson_score", "spearman_score"):
        if scores.get(key) is not None:
            flat[f"test/{key}"] = float(scores[key])
    flat["test/partial"] = float(bool(scores.get("partial")))
    for name, row in scores.get("subsets", {}).items():
        for stat in ("r", "rho", "n"):
            if row.get(stat) is not None:
                flat[f"test/{name}/{stat}"] = float(row[stat])
    return flat


def log_to_wandb(
    scores: dict[str, Any], written: dict[str, Path], out_dir: Path, wandb_cfg: Any, name: str, config: dict
) -> None:
    """Log the scores (run summary) and the scatter PNGs to a W&B run (offline unless the user chose a mode)."""
    mode = OmegaConf.select(wandb_cfg, "mode", default=None) if wandb_cfg is not None else None
    project = OmegaConf.select(wandb_cfg, "project", default=None) if wandb_cfg is not None else None
    run = start_run(
        mode=mode,
        project=project,
        name=name,
        job_type="evaluate",
        dir=str(out_dir),
        config=config,
        reinit="finish_previous",
    )
    try:
        log_scores_to_run(run, scores, written)
    finally:
        finish_run()


def log_scores_to_run(run: Any, scores: dict[str, Any], written: dict[str, Path]) -> None:
    """Scores into the run summary (``test/...``), scatter PNGs as images, in an open W&B run."""
    import wandb

    run.summary.update(_flat_scores(scores))
    images = {
        f"test/scatter_{key[len('scatter_') : -len('.png')]}": wandb.Image(str(path))
        for key, path in written.items()
        if key.startswith("scatter_")
    }
    if images:
        run.log(images)
