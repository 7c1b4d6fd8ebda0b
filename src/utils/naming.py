"""Names of runs and folders: the combination name ``<first>-<core>-<final>`` and safe job folder names.

``conf/`` uses both through OmegaConf resolvers (``${pf.combination:}``, ``${pf.dirname:...}``),
registered by :func:`src.entry.register_resolvers` where the apps start.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

COMBINATION_GROUPS = ("first", "core", "final")
MAX_DIRNAME = 180  # bytes of one folder name (file systems allow 255)


def combination_name(first: object, core: object, final: object) -> str:
    """``"autosome-bhi-resnet"`` for the block names ``autosome``, ``bhi``, ``resnet``."""
    return f"{first}-{core}-{final}"


def combination_of(cfg: Mapping[str, Any] | Any) -> str:
    """The combination name of a config (or checkpoint hyperparameters) holding ``first/core/final.name``."""
    return combination_name(*(cfg[group]["name"] for group in COMBINATION_GROUPS))


def safe_dirname(text: object) -> str:
    """A file-system safe, stable folder name for a job's ``override_dirname``.

    ``/`` (from path values) becomes ``%2F``; an empty name becomes ``default``; a name longer
    than :data:`MAX_DIRNAME` bytes is cut and ends with a hash of the whole name, so it stays unique.
    """
    name = str(text or "").replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")
    if not name:
        return "default"
    if name in (".", ".."):
        return name.replace(".", "%2E")
    raw = name.encode("utf-8")
    if len(raw) <= MAX_DIRNAME:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:12]
    head = raw[: MAX_DIRNAME - len(digest) - 1].decode("utf-8", errors="ignore")
    return f"{head}~{digest}"
