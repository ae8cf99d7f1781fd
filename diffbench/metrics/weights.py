"""Where a metric network's weights come from: a params field, else an environment variable, else a download."""

from __future__ import annotations

import os
from pathlib import Path

from diffbench.errors import DiffbenchError


def local_weights_file(path: str | None, field: str, env: str, what: str, remedy: str) -> str | None:
    """``path`` if given, else ``$env``, else None (the caller downloads); a named file that does not exist
    is a one-line DiffbenchError naming it, where it came from, and ``remedy``."""
    source = field
    if not path:
        path, source = os.environ.get(env) or None, f"${env}"
    if path is None:
        return None
    if not Path(path).is_file():
        raise DiffbenchError(f"{what} weights file {path} (from {source}) does not exist; {remedy}")
    return str(path)
