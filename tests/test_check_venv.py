"""scripts/check_venv.py: when setup.sh may skip pip (this checkout's diffbench, every listed requirement met)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import check_venv
from scripts.check_venv import first_gap, requirements, unmet


def project(root: Path, dependencies: list[str], extras: dict[str, list[str]]) -> Path:
    """A pyproject.toml in ``root`` naming the project diffbench with these requirements."""
    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(f'"{item}"' for item in items) + "]"

    optional = "".join(f"{name} = {toml_list(reqs)}\n" for name, reqs in extras.items())
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "diffbench"\ndependencies = {toml_list(dependencies)}\n'
        f"[project.optional-dependencies]\n{optional}"
    )
    return root


def test_requirements_add_the_named_extras_only(tmp_path):
    root = project(tmp_path, ["pytest>=1"], {"a": ["numpy"], "b": ["no-such-dist"]})
    assert requirements(root / "pyproject.toml", ["a"]) == ("diffbench", ["pytest>=1", "numpy"])
    with pytest.raises(SystemExit, match="no extra 'c'; it has a, b"):
        requirements(root / "pyproject.toml", ["c"])


def test_unmet_names_a_missing_or_wrong_version_and_honours_markers():
    assert unmet("pytest>=1") is None
    assert unmet("PyTest>=1") is None  # names are compared normalised
    assert unmet("pytest<1").startswith("pytest ") and unmet("pytest<1").endswith("; pytest<1 is required")
    assert unmet("no-such-dist-for-check-venv") == "no-such-dist-for-check-venv is not installed"
    assert unmet('no-such-dist-for-check-venv; python_version < "3"') is None


def test_first_gap_wants_this_checkout_installed_then_every_requirement(tmp_path, monkeypatch):
    root = project(tmp_path, ["pytest>=1"], {"test": ["pytest<1"]})
    monkeypatch.setattr(check_venv, "editable_source", lambda name: None)
    assert first_gap(root, []) == "diffbench is not installed editable"
    monkeypatch.setattr(check_venv, "editable_source", lambda name: Path("/elsewhere"))
    assert first_gap(root, []) == f"diffbench is installed from /elsewhere, not from {root}"
    monkeypatch.setattr(check_venv, "editable_source", lambda name: root)
    assert first_gap(root, []) is None
    assert "pytest<1 is required" in first_gap(root, ["test"])
