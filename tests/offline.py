"""Skip marks for tests that need the local data or weights of README "Offline use".

A skip reason names the variable to set and the README section that explains it, so a newcomer whose
run skips knows what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SECTION = "Offline use"
WHERE = f'README "{SECTION}" explains it'


def offline_path(variable: str, *parts: str) -> Path | None:
    """``$variable`` joined with ``parts`` (None while the variable is unset or empty)."""
    base = os.environ.get(variable)
    return Path(base, *parts) if base else None


def needs_offline(variable: str, *parts: str) -> pytest.MarkDecorator:
    """Skip unless ``$variable/parts`` exists; the reason names the variable and where the README explains it."""
    path = offline_path(variable, *parts)
    if path is None:
        reason = f"set {variable} ({WHERE})"
    else:
        reason = f"{path} (from {variable}) does not exist ({WHERE})"
    return pytest.mark.skipif(path is None or not path.exists(), reason=reason)
