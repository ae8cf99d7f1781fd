"""The in-process stage runner: stages' own commands run in one process, loads shared, failures contained."""

import sys
import textwrap

import pytest

from diffbench import process_cache
from diffbench.stage_runner import parse_command, run_stages

FAKE_STAGE = '''
import sys
from pathlib import Path
from diffbench import process_cache

def main(argv):
    name, outcome = argv
    net = process_cache.cached(("net",), lambda: object())
    Path(name).write_text(str(id(net)))
    if outcome == "fail":
        raise SystemExit(2)
    if outcome == "crash":
        raise RuntimeError("boom")
'''


@pytest.fixture
def fake_stage(tmp_path, monkeypatch):
    (tmp_path / "fake_stage_module.py").write_text(textwrap.dedent(FAKE_STAGE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield "fake_stage_module"
    process_cache.enable(False)
    sys.modules.pop("fake_stage_module", None)


def test_stages_run_in_one_process_share_loads_and_a_failure_skips_only_its_item(fake_stage, tmp_path):
    done = tmp_path / "done.txt"
    commands = {
        "generate@m.a": f"python -m {fake_stage} ga ok",
        "score@m.a": f"python -m {fake_stage} sa ok",
        "generate@m.b": f"python -m {fake_stage} gb fail",
        "score@m.b": f"python -m {fake_stage} sb ok",
        "generate@m.c": f"python -m {fake_stage} gc crash",
        "elbo@m": f"python -m {fake_stage} e ok",
    }
    status = run_stages(commands, done)
    assert status == {"generate@m.a": 0, "score@m.a": 0, "generate@m.b": 2, "score@m.b": -1,
                      "generate@m.c": 1, "elbo@m": 0}
    assert done.read_text().split() == ["generate@m.a", "score@m.a", "elbo@m"]
    assert not (tmp_path / "sb").exists()  # skipped: its generation failed
    assert len({(tmp_path / name).read_text() for name in ("ga", "sa", "gb", "e")}) == 1  # loaded once


def test_a_command_that_is_not_python_dash_m_fails_before_any_stage_runs(fake_stage, tmp_path):
    commands = {"generate@m.a": f"python -m {fake_stage} ga ok", "report": "dvc exp show > report.txt"}
    with pytest.raises(ValueError, match="report: command 'dvc exp show > report.txt' is not `python -m"):
        run_stages(commands, tmp_path / "done.txt")
    assert not (tmp_path / "ga").exists()
    assert parse_command("s", "/usr/bin/python3 -m stages.score m r") == ("stages.score", ["m", "r"])


def test_the_process_cache_reloads_a_rewritten_file_and_is_off_by_default(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"1")
    assert process_cache.cached(process_cache.file_key(path), object) is not process_cache.cached(
        process_cache.file_key(path), object)  # off: every call loads
    process_cache.enable()
    try:
        first = process_cache.cached(process_cache.file_key(path), object)
        assert process_cache.cached(process_cache.file_key(path), object) is first
        path.write_bytes(b"22")
        assert process_cache.cached(process_cache.file_key(path), object) is not first
    finally:
        process_cache.enable(False)


def test_runners_sharing_claims_split_the_units_and_keep_to_the_model_they_loaded(fake_stage, tmp_path):
    claims = tmp_path / "claims"
    claims.mkdir()
    commands = {f"{stage}@{item}": f"python -m {fake_stage} {stage}-{item} ok"
                for item in ("m1.a", "m2.a", "m1.b", "m2.b") for stage in ("generate", "score")}
    (claims / "m2.a").touch()  # another runner has it
    first = run_stages(commands, tmp_path / "done-1.txt", claims)
    assert list(first) == ["generate@m1.a", "score@m1.a", "generate@m1.b", "score@m1.b",  # m1 loaded: its units first
                           "generate@m2.b", "score@m2.b"]
    assert run_stages(commands, tmp_path / "done-2.txt", claims) == {}  # nothing left to claim
    assert sorted(p.name for p in claims.iterdir()) == ["m1.a", "m1.b", "m2.a", "m2.b"]
