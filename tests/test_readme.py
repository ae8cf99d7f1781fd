"""README "Quick start" as a newcomer follows it: its bash blocks, run in a temporary clone in the README's order.

The steps are parsed from README.md, never copied here: the ```bash blocks under the NEWCOMER_SECTIONS
headings ("Set up", "Offline use", "Two commands"), in document order. They run in one bash shell with
``set -euo pipefail`` (the first failing command fails the test), in a ``git clone`` of this checkout's
HEAD with its uncommitted changes copied over, ``../shared`` beside it, and the environment of a fresh
login: no ``DIFFBENCH_*`` or Python-path variables, no PATH entry into the running test's Python
environment.

Run as written: every other line, i.e. the whole Offline use block (``export DIFFBENCH_DATA_DIR``,
``offline-inception.sh`` building the Inception weights with the clone's .venv, ``export
DIFFBENCH_INCEPTION_WEIGHTS``).

Substituted (SUBSTITUTIONS, each for exactly one README line):

- ``bash scripts/setup.sh`` → ``ln -s`` a provided virtualenv as ``.venv``, then the same command. The
  provided venv sees this test's installed packages (torch, DVC, ...) through a ``.pth`` file and has
  their console scripts, so setup.sh runs for real (checks .venv, installs this clone's diffbench
  editable) without downloading torch (~2.5 min). The venv appears only when the README's setup line
  runs, so a block moved before it finds no ``.venv``; ``TORCH_SPEC`` names a missing file, so a
  setup.sh started before that line fails at once instead of downloading torch.
- ``bash scripts/quick.sh`` → ``bash scripts/quick.sh preflight``: setup.sh (nothing to install now),
  ``dvc repro preflight`` in profiles/quick (DVC parses its dvc.yaml; the stage checks params, plan and
  the local data and weights that the Offline block named), then the closing summary of the committed
  reports. Skipped: the other stages of the ~11-minute ``dvc repro``.
- ``bash scripts/test.sh`` → ``bash scripts/test.sh -m "not slow" -rs tests/test_data.py``: setup.sh
  (nothing to install) and the data tests, one of which reads ``$DIFFBENCH_DATA_DIR``. Skipped: the rest
  of the 5-minute suite, which holds this test.

So the test fails when a block's command breaks, or when a block moves before the one that provides what
it needs (.venv for the weights, the two variables for preflight and the data tests). About 50 s on a
2-core CPU machine.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from diffbench.data import DATA_DIR_ENV
from diffbench.metrics.inception import WEIGHTS_ENV
from tests.offline import SECTION, needs_offline

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared"
NEWCOMER_SECTIONS = {"Set up", SECTION, "Two commands"}
SUBSTITUTIONS = {
    "bash scripts/setup.sh": 'ln -s "{venv}" .venv && bash scripts/setup.sh',
    "bash scripts/quick.sh": "bash scripts/quick.sh preflight",
    "bash scripts/test.sh": 'bash scripts/test.sh -m "not slow" -rs tests/test_data.py',
}
FENCE = "```"
HEADING = re.compile(r"^#{1,6} +(.+?)\s*$")
BASH_BLOCK = re.compile(rf"^{FENCE}bash\n(.*?)^{FENCE}\s*$", re.MULTILINE | re.DOTALL)
LAUNCHER = "#!{python}\nimport sys\nfrom {module} import {head}\nsys.exit({attr}())\n"


# --------------------------------------------------------------------------- reading the README


def sections(markdown: str) -> list[tuple[str, str]]:
    """(heading, text up to the next heading) in document order; a ``#`` line inside a code fence is no heading."""
    found: list[tuple[str, list[str]]] = [("", [])]
    in_fence = False
    for line in markdown.splitlines(keepends=True):
        heading = None if in_fence else HEADING.match(line)
        if heading:
            found.append((heading.group(1), []))
            continue
        in_fence ^= line.startswith(FENCE)
        found[-1][1].append(line)
    return [(title, "".join(lines)) for title, lines in found]


def bash_blocks(markdown: str, headings: set[str]) -> list[tuple[str, str]]:
    """(heading, code) of every ```bash block under one of ``headings``, in document order."""
    return [(title, code) for title, text in sections(markdown) if title in headings
            for code in BASH_BLOCK.findall(text)]


def command(line: str) -> str:
    """A README line without its trailing comment."""
    return line.split("#", 1)[0].strip()


def walk_script(blocks: list[tuple[str, str]], substitutions: dict[str, str]) -> str:
    """One bash script of ``blocks`` in order, each announced, with whole-command ``substitutions``."""
    lines = ["set -euo pipefail"]
    for title, code in blocks:
        lines.append(f"echo '>>> README \"{title}\"'")
        lines += [substitutions.get(command(line), line) for line in code.splitlines()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the temporary clone


def git_files(root: Path, *command: str) -> set[str]:
    """The NUL-separated file names a ``git`` command prints in ``root``."""
    out = subprocess.run(["git", *command], cwd=root, check=True, capture_output=True).stdout
    return set(filter(None, out.decode().split("\0")))


def clone_with_changes(root: Path, dest: Path) -> None:
    """``git clone`` of ``root``'s HEAD, then ``root``'s uncommitted edits, new files and deletions over it."""
    subprocess.run(["git", "-c", "advice.detachedHead=false", "clone", "-q", str(root), str(dest)],
                   check=True, capture_output=True)
    deleted = git_files(root, "diff", "-z", "--name-only", "--diff-filter=D", "HEAD")  # staged or not
    for name in deleted:
        (dest / name).unlink(missing_ok=True)
    changed = git_files(root, "diff", "-z", "--name-only", "HEAD") | git_files(
        root, "ls-files", "-z", "--others", "--exclude-standard")
    for name in changed - deleted:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)


def provide_venv(dest: Path) -> Path:
    """A venv whose Python sees this interpreter's installed packages (.pth) and has their console scripts."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    (site_packages,) = dest.glob("lib/python*/site-packages")
    (site_packages / "provided.pth").write_text("".join(f"{path}\n" for path in site.getsitepackages()))
    python = dest / "bin" / "python"
    for entry in metadata.entry_points(group="console_scripts"):
        script = dest / "bin" / entry.name
        if not script.exists():
            head = entry.attr.split(".")[0]
            script.write_text(LAUNCHER.format(python=python, module=entry.module, head=head, attr=entry.attr))
            script.chmod(0o755)
    return dest


def newcomer_env(torch_spec: str) -> dict[str, str]:
    """This environment as a fresh login shell has it: no diffbench or Python-path variables, no PATH entry into
    the running Python environment; ``TORCH_SPEC`` set to ``torch_spec``."""
    prefix = Path(sys.prefix).resolve()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DIFFBENCH_") and key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["PATH"] = os.pathsep.join(entry for entry in os.environ["PATH"].split(os.pathsep)
                                  if entry and not Path(entry).resolve().is_relative_to(prefix))
    env["TORCH_SPEC"] = torch_spec
    return env


# --------------------------------------------------------------------------- tests


def test_sections_and_bash_blocks_follow_headings_outside_fences():
    markdown = ("# Top\n## A\n```bash\n# a comment, not a heading\necho a\n```\n```yaml\nx: 1\n```\n"
                "### B\ntext\n```bash\necho b1\n```\n```bash\necho b2\n```\n## C\n```bash\necho c\n```\n")
    assert [title for title, _ in sections(markdown)] == ["", "Top", "A", "B", "C"]
    assert bash_blocks(markdown, {"B", "A"}) == [("A", "# a comment, not a heading\necho a\n"),
                                                 ("B", "echo b1\n"), ("B", "echo b2\n")]
    script = walk_script(bash_blocks(markdown, {"C", "B"}), {"echo b2": "echo B2"})
    announce = 'echo \'>>> README "{}"\''.format
    assert script.splitlines()[1:] == [announce("B"), "echo b1", announce("B"), "echo B2", announce("C"), "echo c"]


def test_readme_quick_start_has_every_step_and_every_substitution_matches_one_line():
    blocks = bash_blocks(README.read_text(), NEWCOMER_SECTIONS)
    assert {title for title, _ in blocks} == NEWCOMER_SECTIONS
    commands = [command(line) for _, code in blocks for line in code.splitlines()]
    for readme_command in SUBSTITUTIONS:
        assert commands.count(readme_command) == 1, f"README Quick start has no single line {readme_command!r}"


@pytest.mark.parametrize("variable", [DATA_DIR_ENV, WEIGHTS_ENV])
def test_offline_skips_name_the_variable_and_the_readme_section_that_explains_it(variable, tmp_path, monkeypatch):
    (offline_text,) = [text for title, text in sections(README.read_text()) if title == SECTION]
    assert f"${variable}" in offline_text and f"export {variable}=" in offline_text

    monkeypatch.delenv(variable, raising=False)
    unset = needs_offline(variable).mark
    assert unset.args == (True,) and variable in unset.kwargs["reason"]
    assert f'README "{SECTION}"' in unset.kwargs["reason"]

    monkeypatch.setenv(variable, str(tmp_path / "missing"))
    assert needs_offline(variable).mark.args == (True,)
    assert str(tmp_path / "missing") in needs_offline(variable).mark.kwargs["reason"]
    monkeypatch.setenv(variable, str(tmp_path))
    assert needs_offline(variable).mark.args == (False,)


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout: the walk runs in a git clone of it")
@pytest.mark.skipif(not SHARED.is_dir(), reason=f'no {SHARED}: README "{SECTION}" takes data and tools from it')
def test_readme_quick_start_runs_in_order_in_a_fresh_clone(tmp_path):
    repo = tmp_path / "repo"
    clone_with_changes(ROOT, repo)
    (tmp_path / "shared").symlink_to(SHARED)
    venv = provide_venv(tmp_path / "provided-venv")
    substitutions = {readme: ours.format(venv=venv) for readme, ours in SUBSTITUTIONS.items()}
    script = walk_script(bash_blocks(README.read_text(), NEWCOMER_SECTIONS), substitutions)
    env = newcomer_env(torch_spec=str(tmp_path / "no-torch-download-in-this-test"))

    result = subprocess.run(["bash", "-c", script], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=170)
    out = result.stdout
    assert result.returncode == 0, f"README Quick start failed in {repo}:\n{script}\n---\n{out[-6000:]}"

    outcomes = [line for line in out.splitlines() if re.match(r"setup: (\.venv ready|\.venv is up to date)", line)]
    assert len(outcomes) >= 2 and "ready" in outcomes[0], out  # the first run installs this clone's diffbench
    assert all("up to date" in line for line in outcomes[1:]), out  # every rerun installs nothing
    assert re.search(r"^preflight: \d+ planned runs", out, re.MULTILINE), out
    assert re.search(r"\b\d+ passed\b", out), out
    assert not re.search(r"^SKIPPED .*(DIFFBENCH_|README)", out, re.MULTILINE), out
