"""What a callable accepts, read from its signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable


def accepts_keyword(target: Callable, name: str) -> bool:
    """Whether ``target`` takes a keyword argument ``name`` (by name or through ``**kwargs``); False if unreadable."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
