"""The run folder Hydra makes for a single run: whether the user chose it, and tidying it.

Hydra creates ``hydra.run.dir`` (by default ``outputs/<date>/<time>_<first>-<core>-<final>``)
before the task starts. A run that ends before writing anything (``dry_run=true``, or a
``resume=true`` that names no folder) removes that folder again when Hydra picked it.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def run_dir_chosen() -> bool:
    """Whether ``hydra.run.dir`` was set on the command line (True outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return True
    overrides = [str(o) for o in HydraConfig.get().overrides.hydra]
    return any(o.lstrip("+").startswith("hydra.run.dir=") for o in overrides)


def remove_unused_run_dir(run_dir: Path) -> None:
    """Remove the folder Hydra made for this run and its date and outputs folders, when empty and Hydra chose them."""
    if run_dir_chosen():
        return
    for folder in (run_dir, run_dir.parent, run_dir.parent.parent):
        try:
            folder.rmdir()  # only ever removes an empty folder
        except OSError:
            return


def latest_run(run_dir: Path, combination: str) -> Path | None:
    """The newest ``<date>/<time>_<combination>`` folder next to ``run_dir`` holding a ``last.ckpt``."""
    root = run_dir.parent.parent
    found = sorted(p.parent.parent for p in root.glob(f"*/*_{combination}/checkpoints/last.ckpt"))
    found = [p for p in found if p != run_dir]
    return found[-1] if found else None
