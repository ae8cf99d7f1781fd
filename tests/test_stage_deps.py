"""dvc.yaml declares exactly what each stage runs: its code deps are the files its module imports, and
every profile runs the same dvc.yaml (scripts/sync_stage_deps.py rewrites both after an import change)."""

from pathlib import Path

import pytest

from scripts.sync_stage_deps import sync

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "profiles").glob("*/params.yaml"))


def test_code_deps_are_the_imports_of_each_stage():
    text = (ROOT / "dvc.yaml").read_text()
    assert sync(text) == text, "dvc.yaml code deps differ from the stages' imports: run scripts/sync_stage_deps.py"


def test_a_new_sampler_file_is_no_dependency_of_other_runs():
    text = (ROOT / "dvc.yaml").read_text()
    assert "diffbench/samplers/ddim.py" not in text and "diffbench/samplers/${item.kind}.py" in text


@pytest.mark.parametrize("params", PROFILES, ids=lambda p: p.parent.name)
def test_every_profile_runs_the_same_dvc_yaml(params):
    dvc_yaml = params.parent / "dvc.yaml"
    assert not dvc_yaml.is_symlink(), "DVC cannot read a symbolic link in a git revision"
    assert dvc_yaml.read_text() == (ROOT / "dvc.yaml").read_text()
