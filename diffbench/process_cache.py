"""Load once per process: a file-keyed cache for the heavy objects stages load (models, feature networks).

A stage run on its own loads everything once anyway. The in-process runner (:mod:`diffbench.stage_runner`)
runs many stages in one process and turns the cache on, so the second stage that needs the same weights
reuses the loaded (and, if asked, compiled) network. Keys hold the file's resolved path, size and
modification time, so a file rewritten in between is loaded again. Off by default: a stage run by
`dvc repro` behaves exactly as without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

_cache: dict[Hashable, object] = {}
_enabled = False


def enable(on: bool = True) -> None:
    """Turn the cache on (the in-process runner) or off (and empty it)."""
    global _enabled
    _enabled = on
    if not on:
        _cache.clear()


def file_key(path: str | os.PathLike) -> tuple[str, int | None, int | None]:
    """What identifies a file's contents here: resolved path, size, modification time (ns); a missing file
    gets (path, None, None), so its loader runs and fails in its own words."""
    try:
        stat = os.stat(path)
    except OSError:
        return str(path), None, None
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


def cached(key: Hashable, load: Callable[[], T]) -> T:
    """``load()``, or with the cache on, what it returned the first time for ``key``."""
    if not _enabled:
        return load()
    if key not in _cache:
        _cache[key] = load()
    return _cache[key]  # type: ignore[return-value]
