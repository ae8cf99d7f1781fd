"""diffbench.dvc_commit records stages exactly as `dvc commit --force` does, with one lock write per file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("dvc")

from diffbench.dvc_commit import commit_stages, main  # noqa: E402

DVC_YAML = """\
params: [params.yaml]
stages:
  make:
    foreach: [a, b, c]
    do:
      cmd: python -c "open('out/${item}.txt', 'w').write(open('src.txt').read() + '${item}')"
      deps: [src.txt]
      params: [factor]
      outs:
        - out/${item}.txt
"""


def make_repo(folder: Path) -> Path:
    """A DVC repository (no git) with three finished stages' outputs written by hand, none recorded."""
    folder.mkdir()
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=folder, check=True)
    (folder / "dvc.yaml").write_text(DVC_YAML)
    (folder / "params.yaml").write_text("factor: 3\n")
    (folder / "src.txt").write_text("source ")
    (folder / "out").mkdir()
    for item in "abc":
        (folder / "out" / f"{item}.txt").write_text(f"source {item}")
    return folder


def lock(folder: Path) -> dict:
    return yaml.safe_load((folder / "dvc.lock").read_text())


def test_the_lock_equals_dvc_commits_and_the_cache_holds_the_outputs(tmp_path):
    by_cli, by_module = make_repo(tmp_path / "cli"), make_repo(tmp_path / "module")
    subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "-q", "make@a", "make@c"], cwd=by_cli,
                   check=True)
    committed, failed = commit_stages(["make@a", "make@c"], root=by_module)
    assert sorted(committed) == ["make@a", "make@c"] and failed == {}
    assert lock(by_module) == lock(by_cli)
    assert set(lock(by_module)["stages"]) == {"make@a", "make@c"}
    cached = sorted(path.name for path in (by_module / ".dvc" / "cache" / "files").rglob("*") if path.is_file())
    assert cached == sorted(path.name for path in (by_cli / ".dvc" / "cache" / "files").rglob("*") if path.is_file())
    assert len(cached) == 2  # the two outputs, by content
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "make@a", "make@c"], cwd=by_module,
                            capture_output=True, text=True, check=True)
    assert "up to date" in status.stdout


def test_a_later_commit_keeps_the_entries_already_recorded(tmp_path):
    folder = make_repo(tmp_path / "repo")
    commit_stages(["make@a"], root=folder)
    first = lock(folder)["stages"]["make@a"]
    commit_stages(["make@b", "make@c"], root=folder)
    assert list(lock(folder)["stages"]) == ["make@a", "make@b", "make@c"]
    assert lock(folder)["stages"]["make@a"] == first


def test_a_stage_that_cannot_be_committed_is_named_and_the_others_are_recorded(tmp_path, monkeypatch, capsys):
    folder = make_repo(tmp_path / "repo")
    (folder / "out" / "b.txt").unlink()
    monkeypatch.chdir(folder)
    assert main(["make@a", "make@b", "make@c"]) == 1
    assert set(lock(folder)["stages"]) == {"make@a", "make@c"}
    assert "make@b not recorded" in capsys.readouterr().err
    shutil.rmtree(folder / "out")
    assert main(["make@a"]) == 1 and set(lock(folder)["stages"]) == {"make@a", "make@c"}  # nothing lost


def test_an_unknown_stage_is_named_and_a_stage_may_be_given_with_its_dvc_file(tmp_path):
    folder = make_repo(tmp_path / "repo")
    committed, failed = commit_stages(["make@z", "dvc.yaml:make@b"], root=folder)
    assert committed == ["make@b"] and list(failed) == ["make@z"] and "no stage 'make@z'" in failed["make@z"]
    assert set(lock(folder)["stages"]) == {"make@b"}
