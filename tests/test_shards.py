"""Shards: the order one lease runs a shard's stages, and merging a shard's results into this checkout."""

import io
import tarfile
from pathlib import Path

import pytest
import yaml

from diffbench.config import load_params
from diffbench.errors import ParamsError
from diffbench.plan import shard_groups, shard_stages
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
