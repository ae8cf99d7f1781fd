"""Is this checkout's diffbench installed in this interpreter, with every requirement met? (scripts/setup.sh asks.)

Usage: .venv/bin/python scripts/check_venv.py EXTRAS   (comma-separated, e.g. pipeline,test,clip)

Exit 0 when diffbench is installed editable from this checkout and every requirement that pyproject.toml
lists (its dependencies and those of EXTRAS) is installed at an allowed version; otherwise print the first
gap in one line and exit 1. The requirements are read from pyproject.toml, so editing it makes setup.sh
install again. Only the listed requirements are checked, not their own dependencies (pip did those).
"""

from __future__ import annotations

import json
import sys
import tomllib
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

ROOT = Path(__file__).resolve().parents[1]


def requirements(pyproject: Path, extras: list[str]) -> tuple[str, list[str]]:
    """The project's name and its requirement strings, those of ``extras`` included."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"{pyproject}: no extra {unknown[0]!r}; it has {', '.join(optional)}")
    return project["name"], [*project.get("dependencies", []), *(r for extra in extras for r in optional[extra])]


def editable_source(name: str) -> Path | None:
    """The folder that an editable install of distribution ``name`` points at (None: not installed, or not editable)."""
    try:
        text = metadata.distribution(name).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    info = json.loads(text or "{}")
    if not info.get("dir_info", {}).get("editable"):
        return None
    return Path(url2pathname(urlparse(info["url"]).path))


def unmet(requirement: str) -> str | None:
    """Why the installed distributions do not satisfy ``requirement`` (None when they do)."""
    from packaging.requirements import Requirement  # first_gap checked that it is installed

    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return None
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return f"{req.name} is not installed"
    if not req.specifier.contains(version, prereleases=True):
        return f"{req.name} {version} is installed; {requirement} is required"
    return None


def first_gap(root: Path, extras: list[str]) -> str | None:
    """The first thing this interpreter lacks to run ``root``'s project with ``extras`` (None: nothing)."""
    name, required = requirements(root / "pyproject.toml", extras)
    source = editable_source(name)
    if source is None:
        return f"{name} is not installed editable"
    if source.resolve() != root.resolve():
        return f"{name} is installed from {source}, not from {root}"
    if find_spec("packaging") is None:  # installed with dvc and pytest
        return "packaging is not installed, so versions cannot be compared"
    return next((gap for gap in map(unmet, required) if gap), None)


def main(argv: list[str]) -> int:
    extras = [extra for extra in (argv[0] if argv else "").split(",") if extra]
    gap = first_gap(ROOT, extras)
    if gap:
        print(gap)
    return 1 if gap else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
