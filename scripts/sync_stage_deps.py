"""Rewrite the code deps of every stage in dvc.yaml to exactly the files its module imports.

Run after changing imports: ``python scripts/sync_stage_deps.py`` (then copy dvc.yaml into each profile;
tests/test_stage_deps.py checks both). Only the ``${root}/diffbench/...`` and ``${root}/stages/...`` lines
are rewritten, in place; comments, other deps and lines naming ``${item...}`` (a run's own sampler file)
stay as they are.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.imports import transitive_files  # noqa: E402

CMD = re.compile(r"^\s+cmd: python -m (stages\.\w+)")
CODE_DEP = re.compile(r"^(\s+)- \$\{root\}/(diffbench|stages)/[^$]*$")


SAMPLERS = ROOT / "diffbench" / "samplers"
SAMPLING_STAGES = ("stages.generate",)


def sampler_helpers() -> set[str]:
    """Files the sampler plugins import besides themselves (the shared ``_*.py`` helpers and what they use).

    The registry loads plugins dynamically, so no static walk from a stage sees them: a generate stage
    names its own plugin file (``samplers/${item.kind}.py``) and depends on these helpers too.
    """
    plugins = {f"diffbench/samplers/{p.name}" for p in SAMPLERS.glob("[!_]*.py")}
    files: set[str] = set()
    for plugin in plugins:
        files |= transitive_files(f"diffbench.samplers.{Path(plugin).stem}")
    return files - plugins


def code_deps(module: str) -> list[str]:
    """The dvc.yaml dep lines' paths for a stage module, sorted."""
    files = transitive_files(module)
    if module in SAMPLING_STAGES:
        files |= sampler_helpers()
    return sorted(files)


def sync(text: str) -> str:
    """dvc.yaml text with each stage's code-dep block replaced by its computed imports."""
    out: list[str] = []
    module = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := CMD.match(line):
            module = m.group(1)
        if (m := CODE_DEP.match(line)) and module:
            indent = m.group(1)
            while i < len(lines) and CODE_DEP.match(lines[i]):
                i += 1
            out.extend(f"{indent}- ${{root}}/{path}" for path in code_deps(module))
            continue
        out.append(line)
        i += 1
    return "\n".join(out) + "\n"


def main() -> None:
    path = ROOT / "dvc.yaml"
    new = sync(path.read_text())
    path.write_text(new)
    for profile in sorted((ROOT / "profiles").glob("*/dvc.yaml")):
        profile.write_text(new)
    print(f"dvc.yaml: code deps synced; copied into {len(list((ROOT / 'profiles').glob('*/dvc.yaml')))} profile(s)")


if __name__ == "__main__":
    main()
