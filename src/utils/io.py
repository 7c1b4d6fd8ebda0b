"""Writing results safely: atomic file writes and JSON-safe values.

Atomic writes go to a temporary file in the target's folder, are flushed to disk and then
``os.replace``-d into place, so a reader (or a crash) never sees a half-written file.

File mode: the temporary file is created with :func:`open` (mode ``"xb"``), so the result has the
same permissions as any other file the process writes (``0o666`` minus the umask). A fixed mode
such as ``0o644`` would override a user's stricter umask (e.g. ``0o077`` on a shared cluster), and
``tempfile.mkstemp``'s ``0o600`` would hide results from the user's group.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder, ``fsync`` and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:  # e.g. a full disk: the error names the file; an earlier version stays whole
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """A JSON-safe copy of ``obj``: non-finite floats become ``None``, numpy/torch scalars plain numbers.

    Mappings become dicts with string keys, sequences and sets lists, paths strings; anything else
    without a scalar ``item()`` becomes ``str(obj)``.
    """
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    item = getattr(obj, "item", None)  # numpy scalar, 0-d array or one-element tensor
    if callable(item):
        try:
            return json_safe(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(obj)


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write :func:`json_safe` of ``obj`` as JSON plus a newline, atomically (NaN/inf become ``null``)."""
    return atomic_write_text(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")
