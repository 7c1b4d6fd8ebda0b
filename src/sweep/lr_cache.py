"""The sweep's cache of found peak learning rates: one range test per configuration, shared by seeds and reruns.

With ``recipe.lr=auto`` in a sweep, the found peak is kept in ``<sweep_dir>/lr_cache/<hash>.json``, keyed by
everything that shapes the range test (:func:`cache_identity`: the three blocks with their settings, the
processing, the recipe without its peak, retries and epochs, the batch size, the data and its split, the
precision) and not by the seed: every seed and every rerun of the same job reuses it. Two launches that need
the same entry at once take a claim first (:mod:`src.sweep.claims`, the jobs' discipline): one searches, the
other waits for its entry. An entry that cannot be parsed is searched again (with a warning) and replaced,
never used. ``recipe.lr_rerun=true`` ignores entries written before this launch started (the launch's own
searches are still shared by its seeds); ``sweep.rerun=true`` alone keeps the cache. A failed search
(a bad-input error) writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.lr_range import LrSearch
from src.sweep.claims import try_claim
from src.sweep.outcomes import launch_started
from src.utils.io import atomic_write_text

log = logging.getLogger(__name__)

CACHE_DIR = "lr_cache"
# recipe keys that do not change a range test
RECIPE_KEYS_IGNORED = ("lr", "retries", "lr_rerun", "epochs", "steps_per_epoch")
SPLIT_KEYS = ("n_folds", "val_fold", "val_max_items", "val_seed", "split", "test_fold", "fold_val")
POLL_S = 0.5


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _data_identity(cfg: DictConfig) -> dict[str, Any]:
    """The data config, and for a data file its size and modification time (a replaced file is a new key)."""
    data = _plain(cfg.get("data")) or {}
    path = data.get("path") if isinstance(data, dict) else None
    if path and os.path.isfile(str(path)):
        stat = os.stat(str(path))
        data = {**data, "path": str(Path(str(path)).resolve()), "file": [stat.st_size, stat.st_mtime_ns]}
    return data


def cache_identity(cfg: DictConfig) -> dict[str, Any]:
    """What the found peak depends on (see the module doc)."""
    recipe = {k: v for k, v in (_plain(cfg.recipe) or {}).items() if k not in RECIPE_KEYS_IGNORED}
    datamodule = _plain(cfg.get("datamodule")) or {}
    return {
        "blocks": {role: _plain(cfg[role]) for role in ("first", "core", "final")},
        "processing": _plain(cfg.get("processing")),
        "recipe": recipe,
        "batch_size": _plain(cfg.recipe.batch_size),
        "data": _data_identity(cfg),
        "split": {k: datamodule.get(k) for k in SPLIT_KEYS},
        "precision": str(OmegaConf.select(cfg, "trainer.precision", default="")),
        "aux_weights": _plain(cfg.get("aux_weights")),
        "freeze": _plain(cfg.get("freeze")),
    }


def cache_key(identity: dict[str, Any]) -> str:
    text = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def entry_path(sweep_dir: Path, key: str) -> Path:
    return Path(sweep_dir) / CACHE_DIR / f"{key}.json"


def read_entry(path: Path, since: float | None = None) -> LrSearch | None:
    """The cached search at ``path``; ``None`` when absent, older than ``since``, or unparseable (warned)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        entry = json.loads(text)
        search = LrSearch.from_json(entry["search"])
        written = float(entry["written"])
    except (ValueError, KeyError, TypeError) as err:
        log.warning("%s cannot be parsed (%s): searching again and replacing it", path, err)
        return None
    if since is not None and written < since:
        return None
    return search


def write_entry(path: Path, search: LrSearch, identity: dict[str, Any]) -> None:
    entry = {
        "search": search.to_json(),
        "identity": identity,
        "written": time.time(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(entry, indent=1, default=str) + "\n")


def cached_search(
    sweep_dir: Path,
    identity: dict[str, Any],
    search: Callable[[], LrSearch],
    rerun: bool = False,
    claim_timeout: float = 600.0,
) -> tuple[LrSearch, str]:
    """``(search, "cache" | "search")``: the cached peak of ``identity``, or ``search()`` run once and cached."""
    key = cache_key(identity)
    path = entry_path(sweep_dir, key)
    since = (launch_started() or time.time()) if rerun else None
    waited = False
    while True:
        found = read_entry(path, since)
        if found is not None:
            log.info("lr: peak %.3g from the sweep's cache (%s)", found.peak, path.name)
            return found, "cache"
        claim = try_claim(Path(sweep_dir), f"lr-search:{key}", claim_timeout)
        if claim is None:  # another launch searches this configuration now: wait for its entry
            if not waited:
                log.info("lr: another job searches the peak of this configuration; waiting for %s", path)
                waited = True
            time.sleep(POLL_S)
            continue
        try:
            found = read_entry(path, since)  # written while we took the claim
            if found is not None:
                return found, "cache"
            result = search()  # a ConfigError leaves the cache as it was
            write_entry(path, result, identity)
            return result, "search"
        finally:
            claim.release()
