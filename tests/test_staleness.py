"""A result is stale when a file its stage read or a params value it used changed since dvc.lock recorded it."""

import hashlib

import yaml

from diffbench.staleness import NOT_LOCKED, Lock, same_value


def lock_file(tmp_path, code_md5):
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"score@m.r": {
        "cmd": "python -m stages.score m r",
        "deps": [{"path": "code.py", "md5": code_md5, "size": 4},
                 {"path": "elsewhere/samples.npz", "md5": "00" * 16, "size": 1},   # a shard's output, absent here
                 {"path": "data", "md5": "11" * 16 + ".dir", "size": 1}],
        "params": {"params.yaml": {"metrics.kid_subsets": 10}}}}}))


def test_current_changed_and_unlocked_stages(tmp_path):
    (tmp_path / "code.py").write_text("pass")
    lock_file(tmp_path, "2c5d23ee2d5a4a4a3e7aaf4c7b1ed2b0")  # not md5("pass")
    params = {"params.yaml": {"metrics": {"kid_subsets": 10}}}
    assert Lock(tmp_path).why_stale("score@m.r", params) == "code.py changed"
    lock_file(tmp_path, hashlib.md5(b"pass").hexdigest())
    lock = Lock(tmp_path)
    assert lock.why_stale("score@m.r", params) is None
    assert lock.why_stale("score@m.r", {"params.yaml": {"metrics": {"kid_subsets": 4}}}) == \
        "params.yaml: metrics.kid_subsets changed"
    assert lock.why_stale("score@m.other", params) == NOT_LOCKED


def test_without_a_lock_nothing_is_called_stale(tmp_path):
    assert Lock(tmp_path).why_stale("score@m.r", {}) is None


def test_floats_dvc_spelled_as_text_are_the_same_value():
    assert same_value({"check_alpha": "1e-06", "n": [1, 2]}, {"check_alpha": 1.0e-6, "n": [1, 2]})
    assert not same_value({"check_alpha": "1e-05"}, {"check_alpha": 1.0e-6})
    assert not same_value({"a": 1}, {"a": 1, "b": 2})


def test_a_run_planned_with_another_command_is_stale(tmp_path):
    """The lock of 2026-12-03 held DDIM η=1 at --n 5000 when params asked 10,000: same code, same params keys."""
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"vars": ["plan.yaml"], "stages": {
        "generate": {"foreach": "${generations}", "do": {"cmd": "python -m stages.generate ${item.model} --n ${item.n}"}},
        "report": {"cmd": "python -m stages.report"}}}))
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"generations": {"m.r": {"model": "m", "n": 10000}}}))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "generate@m.r": {"cmd": "python -m stages.generate m --n 5000", "deps": []},
        "report": {"cmd": "python -m stages.report", "deps": []}}}))
    lock = Lock(tmp_path)
    assert lock.planned_command("generate@m.r") == "python -m stages.generate m --n 10000"
    assert lock.why_stale("generate@m.r", {}) == "command changed, now `python -m stages.generate m --n 10000`"
    assert lock.why_stale("report", {}) is None
    assert lock.planned_command("generate@unplanned") is None
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"generations": {"m.r": {"model": "m", "n": 5000}}}))
    assert Lock(tmp_path).why_stale("generate@m.r", {}) is None
