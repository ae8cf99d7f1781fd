"""Shards: the order one lease runs a shard's stages, and merging a shard's results into this checkout."""

import io
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from diffbench.config import load_params
from diffbench.errors import ParamsError
from diffbench.plan import long_poles_first, shard_groups, shard_stages
from scripts.unpack_shard import merge_locks, unpack

ROOT = Path(__file__).resolve().parents[1]


def test_a_shard_runs_its_models_whole_chain_headline_rows_first():
    params = load_params(ROOT / "params.yaml")
    groups = dict(shard_groups(params, "mnist"))
    assert list(groups)[:3] == ["setup", "models", "reference"]
    assert groups["models"] == ["train@mnist-linear", "train@mnist-cosine", "train@mnist-sigmoid", "classifier@mnist",
                                "noisy_classifier@mnist-cosine"]  # classifier guidance on the guidance schedule
    names = list(groups)
    assert names.index("sweep") < names.index("guidance") < names.index("classifier_guidance") < names.index("elbo")
    assert names.index("elbo") < names.index("ablation")  # DDPM-1000 last
    stages = shard_stages(params, "mnist")
    assert len(stages) == len(set(stages)) and not any("cifar10-jpeg" in s for s in stages)
    mnist_runs = {g.key for g in params.plan.generations if g.model.dataset == "mnist"}
    assert {s.split("@")[1] for s in stages if s.startswith("generate@")} == mnist_runs
    with pytest.raises(ParamsError, match="shard 'nosuch': not in params shards"):
        shard_groups(params, "nosuch")


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_unpacking_merges_the_lock_and_keeps_other_shards(tmp_path):
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "train@a": {"cmd": "old a"}, "train@b": {"cmd": "b"}}}))
    archive = tmp_path / "shard.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add(tar, "dvc.lock", yaml.safe_dump({"schema": "2.0", "stages": {"train@a": {"cmd": "new a"},
                                                                          "train@c": {"cmd": "c"}}}).encode())
        add(tar, "results/m/r/metrics.json", b"{}")
    assert unpack(archive, tmp_path) == ["train@a", "train@c"]
    stages = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]
    assert stages == {"train@a": {"cmd": "new a"}, "train@b": {"cmd": "b"}, "train@c": {"cmd": "c"}}
    assert (tmp_path / "results/m/r/metrics.json").read_text() == "{}"
    assert merge_locks({}, {"stages": {"x": {}}})["stages"] == {"x": {}}


def test_an_archive_with_paths_outside_the_profile_is_refused(tmp_path):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add(tar, "../escape.txt", b"x")
    with pytest.raises(SystemExit, match="unsafe path"):
        unpack(archive, tmp_path / "profile")
    assert not (tmp_path / "escape.txt").exists()


def test_shard_status_names_each_workers_running_stage_and_its_eta(tmp_path):
    from scripts.shard_status import status

    (tmp_path / "timeline.tsv").write_text("group\tstages\tstart_s\tseconds\texit\nmodels\t4\t27\t413\t0\n")
    (tmp_path / "m1.log").write_text(
        "[stage_runner] generate@m1.a: stages.generate m1 a\n[stage_runner] generate@m1.a: exit 0 after 3.0 s\n"
        "[stage_runner] score@m1.a: stages.score m1 a\nInception features: 2000/10000 images (20%), 900 img/s, ETA 9 s\n")
    (tmp_path / "done-m1.txt").write_text("generate@m1.a\n")
    (tmp_path / "m2.log").write_text("[stage_runner] elbo@m2: stages.elbo m 2\n[stage_runner] elbo@m2: exit 0 after 1 s\n")
    (tmp_path / "train_m1.log").write_text("m1 step 100/2400 (4%) loss 0.1 lr 1e-3 4000 img/s, ETA 5 min\n")
    lines = status(tmp_path)
    assert lines[0] == "group models: 4 stages, exit 0 after 413 s"
    assert ("m1: 1 stages done; now score@m1.a: Inception features: 2000/10000 images (20%), 900 img/s, ETA 9 s"
            in lines)
    assert "m2: 0 stages done; idle or finished" in lines
    assert "train_m1: m1 step 100/2400 (4%) loss 0.1 lr 1e-3 4000 img/s, ETA 5 min" in lines


def test_runners_start_the_long_poles_first_and_keep_the_priority_order_of_the_rest():
    params = load_params(ROOT / "params.yaml")
    tables = [s for name, stages in shard_groups(params, "mnist") if name not in ("setup", "models", "reference")
              for s in stages]
    ordered = long_poles_first(params, tables, 3)
    assert sorted(ordered) == sorted(tables)
    assert ordered[:2] == ["generate@mnist-linear.ddpm-1000-cfg1", "score@mnist-linear.ddpm-1000-cfg1"]
    rest = [s for s in tables if s not in ordered[:2]]
    assert ordered[2:] == rest  # the headline rows keep their order
    assert long_poles_first(params, tables, 1) == tables  # one runner: no pole is longer than half of all
    with pytest.raises(ParamsError, match="runners must be >= 1"):
        long_poles_first(params, tables, 0)


def test_each_real_data_floor_runs_right_after_its_classifier_beside_the_training():
    from scripts.gpu_shard import floors_after_classifiers, floors_with_models

    groups = floors_with_models(shard_groups(load_params(ROOT / "params.yaml"), "mnist"))
    assert [name for name, _ in groups][:2] == ["setup", "models"] and "reference" not in dict(groups)
    models = dict(groups)["models"]
    assert floors_after_classifiers(models) == [
        ["train@mnist-linear"], ["train@mnist-cosine"], ["train@mnist-sigmoid"], ["classifier@mnist", "reference@mnist"],
        ["noisy_classifier@mnist-cosine"]]
    # resumed after the classifier was recorded: the floor runs alone
    assert floors_after_classifiers(["train@mnist-linear", "reference@mnist"]) == [["train@mnist-linear"],
                                                                                  ["reference@mnist"]]


def test_stages_with_missing_files_are_stale_without_asking_dvc(tmp_path, monkeypatch):
    import scripts.gpu_shard as gpu_shard

    (tmp_path / "here.txt").write_text("x")
    lock = {"stages": {
        "a": {"deps": [{"path": "here.txt"}], "outs": [{"path": "gone.npz"}]},
        "b": {"deps": [{"path": "here.txt"}], "outs": [{"path": "here.txt"}]},
    }}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    monkeypatch.chdir(tmp_path)
    asked = []

    def fake_run(command, **kwargs):
        assert command[:5] == [sys.executable, "-m", "dvc", "status", "--json"]  # this interpreter's DVC
        asked.append(command[5:])
        return type("Done", (), {"returncode": 0, "stdout": "{}"})()

    monkeypatch.setattr(gpu_shard.subprocess, "run", fake_run)
    assert gpu_shard.stale(["a", "b", "c"]) == ["a", "c"]  # c: never locked; b: dvc status calls it current
    assert asked == [["b"]]  # only the stage whose files are all here is asked about
    assert gpu_shard.stale(["a", "c"]) == ["a", "c"] and asked == [["b"]]


def test_dvc_runs_under_the_scripts_own_interpreter():
    """Not a `dvc` script from PATH, whose first line may name a Python without DVC's dependencies (a GPU
    image's system pip wrote `#!/usr/bin/python3` into a wheelhouse's `dvc`, 2026-12-03)."""
    import scripts.gpu_shard as gpu_shard

    done = subprocess.run([*gpu_shard.DVC, "--version"], capture_output=True, text=True, env={"PATH": ""})
    assert done.returncode == 0 and done.stdout.strip()[0].isdigit()


def test_a_runners_stages_record_how_many_share_the_gpu(monkeypatch):
    from diffbench.errors import DiffbenchError
    from diffbench.records import SHARED_ENV, gpu_shared_by

    monkeypatch.delenv(SHARED_ENV, raising=False)
    assert gpu_shared_by() == 1
    monkeypatch.setenv(SHARED_ENV, "4")
    assert gpu_shared_by() == 4
    monkeypatch.setenv(SHARED_ENV, "0")
    with pytest.raises(DiffbenchError, match="DIFFBENCH_GPU_SHARED_BY='0': must be a whole number >= 1"):
        gpu_shared_by()


def test_the_models_group_resolves_every_stage_command_with_one_dvc_index(tmp_path, monkeypatch):
    """One DVC index for the whole group (was one per stage, each parsing every foreach of dvc.yaml)."""
    import scripts.gpu_shard as gpu_shard

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gpu_shard, "LOGS", tmp_path)
    asked = []

    def fake_commands(stages):
        asked.append(list(stages))
        return {stage: "true" for stage in stages}

    committed = []
    monkeypatch.setattr(gpu_shard, "stage_commands", fake_commands)
    monkeypatch.setattr(gpu_shard.subprocess, "run", lambda command, **kwargs: committed.append(command))
    chains = [["train@a"], ["classifier@d", "reference@d"]]
    assert gpu_shard.side_by_side(chains, time.time() + 60) == 0
    assert asked == [["train@a", "classifier@d", "reference@d"]]
    assert len(committed) == 1 and committed[0][:3] == [sys.executable, "-m", "diffbench.dvc_commit"]
    assert sorted(committed[0][3:]) == ["classifier@d", "reference@d", "train@a"]


def test_the_tables_group_ends_with_its_runners_not_at_the_next_commit(tmp_path, monkeypatch):
    """Its wait polls every POLL_S and commits every COMMIT_EVERY_S: it no longer sleeps up to 30 s past the
    runners' end, and what they finished is recorded once they have ended."""
    import scripts.gpu_shard as gpu_shard

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gpu_shard, "LOGS", tmp_path)

    def fake_launch(command, log, env=None):  # a runner that finishes its one stage at once
        done = command[command.index("--done") + 1]
        return subprocess.Popen([sys.executable, "-c", f"open({done!r}, 'a').write('score@m.r\\n')"])

    sleeps, committed = [], []
    real_sleep = time.sleep
    monkeypatch.setattr(gpu_shard, "launch", fake_launch)
    monkeypatch.setattr(gpu_shard.time, "sleep", lambda s: (sleeps.append(s), real_sleep(0.05)))
    monkeypatch.setattr(gpu_shard.subprocess, "run",
                        lambda command, **kwargs: (committed.append(command), subprocess.CompletedProcess(command, 0))[1])
    assert gpu_shard.runners(["score@m.r"], 1, time.time() + 3600) == 0
    assert sleeps and max(sleeps) <= gpu_shard.POLL_S < gpu_shard.COMMIT_EVERY_S
    assert committed[-1] == [sys.executable, "-m", "diffbench.dvc_commit", "score@m.r"]
