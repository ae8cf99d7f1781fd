"""The diffbench files a module executes on import: its static imports, transitively (ast walk).

Package ``__init__`` files along each path count (Python runs them); imports inside functions count
too (they run when the function does). Dynamic imports (the sampler registry's discovery) are not
seen: dvc.yaml names the one sampler file a run uses on top of these.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("diffbench", "stages")


def module_file(name: str) -> Path | None:
    """diffbench.x.y → diffbench/x/y.py or diffbench/x/y/__init__.py (None if it is not a module file)."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules imported by name
    return {n for n in names if n.split(".")[0] in PACKAGES}


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def transitive_files(module: str) -> set[str]:
    """Repository-relative paths of every diffbench/stages file ``module`` executes on import."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        for name in _with_parents(todo.pop()):
            path = module_file(name)
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.extend(_imported_names(path))
    return {str(p.relative_to(ROOT)) for p in seen if p.name != "__init__.py" or p.parent.name != "stages"}
