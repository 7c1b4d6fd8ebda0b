"""The binary cache of parsed data sets: built once, memory-mapped read-only by every process.

An entry is a folder ``<cache_dir>/<reader>-<key>/`` holding raw arrays (``<name>.bin``)
and ``meta.json`` (shapes, dtypes, CRC-32 of every array, the source's identity). The
key is a digest of the source file's identity (resolved path, size, mtime and a SHA-1
of its content) and of the reader's settings, so a changed file gets a new entry.

Building is atomic: the arrays are written into a private temporary folder that is
renamed into place when complete; an flock on ``<entry>.lock`` makes other processes
wait for the builder instead of parsing the same file again. An entry whose files
are missing, truncated or whose checksums differ is removed and rebuilt, never used.
Mapped read-only, the pages of an entry are shared by every process that maps it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mmap
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from src.datamodules.dream_text import ARRAYS

log = logging.getLogger(__name__)

FORMAT = 2  # bump when the layout or the parsing rules change
_READ = 1 << 23


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/prixfixe``, else ``~/.cache/prixfixe``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "prixfixe"


def _stream(path: Path) -> Iterator[bytes]:
    buf = bytearray(_READ)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buf):
            yield view[:n]


def file_identity(path: str | Path) -> dict[str, Any]:
    """Resolved path, size, mtime (ns) and SHA-1 of a file's bytes (read in blocks: no memory held)."""
    p = Path(path).resolve()
    stat = p.stat()
    digest = hashlib.sha1(usedforsecurity=False)
    for block in _stream(p):
        digest.update(block)
    return {"path": str(p), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha1": digest.hexdigest()}


def entry_key(identity: dict[str, Any], settings: dict[str, Any]) -> str:
    text = json.dumps({"format": FORMAT, "source": identity, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _crc(path: Path) -> int:
    crc = 0
    for block in _stream(path):
        crc = zlib.crc32(block, crc)
    return crc


def verify(entry: Path, key: str) -> dict[str, Any] | None:
    """The entry's metadata when every file is present, of the right size and checksum; else None."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("key") != key or meta.get("format") != FORMAT:
            return None
        for name, dtype in ARRAYS.items():
            file = entry / f"{name}.bin"
            expected = int(np.prod(meta["shapes"][name])) * np.dtype(dtype).itemsize
            if file.stat().st_size != expected or _crc(file) != meta["crc32"][name]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta


def map_arrays(entry: Path, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """Read-only memory maps of an entry's arrays (an empty array needs no map)."""
    out = {}
    for name, dtype in ARRAYS.items():
        shape = tuple(meta["shapes"][name])
        if int(np.prod(shape)) == 0:
            out[name] = np.zeros(shape, dtype=dtype)
            continue
        with open(entry / f"{name}.bin", "rb") as handle:
            pages = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        out[name] = np.frombuffer(pages, dtype=dtype).reshape(shape)
    return out


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock (Windows): atomic rename alone keeps entries whole
        yield
        return
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Builder = Callable[[Path], dict[str, Any]]


def build_entry(folder: Path, build: Builder) -> dict[str, Any]:
    """Run ``build`` into ``folder`` and write its meta.json (``build`` returns shapes and checksums)."""
    meta = build(folder)
    meta["format"] = FORMAT
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def _move_into_place(tmp: Path, entry: Path, key: str) -> None:
    """Rename the finished folder into place; if another builder won the race, keep its (valid) entry."""
    try:
        os.replace(tmp, entry)
    except OSError:
        if verify(entry, key) is None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def cached(
    source: str | Path,
    reader: str,
    settings: dict[str, Any],
    build: Builder,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The entry of ``source`` read by ``reader`` with ``settings``: mapped if valid, else built first.

    Returns the entry's metadata, with ``entry`` (its folder) added, and its mapped arrays.
    """
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    key = entry_key(file_identity(source), {"reader": reader, **settings})
    entry = root / f"{reader}-{key}"
    meta = verify(entry, key) if entry.exists() else None
    if meta is None:
        with _locked(root / f"{reader}-{key}.lock"):
            meta = verify(entry, key) if entry.exists() else None  # another process may have built it meanwhile
            if meta is None:
                if entry.exists():
                    log.warning("cache entry %s is incomplete or corrupt: rebuilding it", entry)
                    shutil.rmtree(entry, ignore_errors=True)
                tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{reader}-{key}.", suffix=".tmp"))
                try:
                    build_entry(tmp, lambda folder: {**build(folder), "key": key, "source": str(source)})
                    _move_into_place(tmp, entry, key)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                meta = json.loads((entry / "meta.json").read_text())
                log.info("cached %s as %s", source, entry)
    else:
        log.info("%s: using the cache entry %s", source, entry)
    return {**meta, "entry": str(entry)}, map_arrays(entry, meta)


def uncached(build: Builder) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Build into a private temporary folder, map the arrays and remove the folder (the maps keep the data)."""
    tmp = Path(tempfile.mkdtemp(prefix="prixfixe-data-"))
    try:
        meta = build_entry(tmp, build)
        return meta, map_arrays(tmp, meta)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
