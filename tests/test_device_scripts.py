"""scripts/device_bundle.sh and scripts/device_setup.sh: the Inception weights cross in three calls and come back
whole and checked; a step on a machine that did not run the one before refuses in one line."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, bytes, str]:
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"mnist")
    (data / "cifar10-jpeg").mkdir()
    (data / "cifar10-jpeg" / "cifar10-jpeg.tar.gz").write_bytes(b"cifar")
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "built-0-py3-none-any.whl").write_bytes(b"wheel")
    weights = os.urandom(100_003)  # not a multiple of 3: the last part is shorter
    (tmp_path / "inception.pth").write_bytes(weights)
    out = tmp_path / "bundle"
    env = os.environ | {"DIFFBENCH_DATA_DIR": str(data), "DIFFBENCH_INCEPTION_WEIGHTS": str(tmp_path / "inception.pth")}
    missing = subprocess.run(["bash", "scripts/device_bundle.sh", str(out)], cwd=ROOT, capture_output=True,
                             text=True, env={k: v for k, v in env.items() if k != "WHEELHOUSE"})
    assert missing.returncode != 0 and "set WHEELHOUSE to a folder of Python 3.12 wheels" in missing.stderr
    result = subprocess.run(["bash", "scripts/device_bundle.sh", str(out)], cwd=ROOT, capture_output=True, text=True,
                            env=env | {"WHEELHOUSE": str(wheelhouse)})
    assert result.returncode == 0, result.stderr
    (wheelhouse / "built-0-py3-none-any.whl").write_bytes(b"rebuilt")  # the bundle's copy is kept once made
    again = subprocess.run(["bash", "scripts/device_bundle.sh", str(out)], cwd=ROOT, capture_output=True, text=True,
                           env=env)
    assert again.returncode == 0, again.stderr
    return out, weights, result.stdout


def test_the_bundle_splits_the_weights_over_three_calls_and_prints_each_call(bundle):
    out, weights, stdout = bundle
    parts = [out / f"call{i + 2}" / f"inception.part{i}" for i in range(3)]
    assert b"".join(part.read_bytes() for part in parts) == weights
    assert (out / "call4" / "inception.sha256").read_text().strip() == hashlib.sha256(weights).hexdigest()
    assert (out / "call1" / "wheels" / "built-0-py3-none-any.whl").read_bytes() == b"wheel"
    assert (out / "call1" / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == b"mnist"
    assert (out / "call2" / "cifar10-jpeg.tar.gz").read_bytes() == b"cifar"
    for call in range(1, 5):
        assert f'run(command="bash scripts/device_setup.sh {call} {out}' in stdout and f'carry=["{out}/call{call}"]' in stdout


def setup(repo: Path, device: Path, *args: str) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # python3 with dvc and torch-fidelity
    return subprocess.run(["bash", "scripts/device_setup.sh", *args], cwd=repo, capture_output=True, text=True,
                          env=os.environ | {"DEVICE_ROOT": str(device), "PATH": path})


def test_setup_reassembles_the_weights_in_order_and_refuses_out_of_order(bundle, tmp_path):
    out, weights, _ = bundle
    repo = tmp_path / "repo"  # the device's copy of the working tree: the scripts and the carried bundle
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "device_setup.sh", repo / "scripts")
    shutil.copytree(out, repo / "bundle")
    device = tmp_path / "device"
    refused = setup(repo, device, "2", "bundle")
    assert refused.returncode == 2 and refused.stderr == (
        "device_setup: step 1 has not run on this machine (a fresh one?): start again at call 1\n")
    (device / "stash").mkdir(parents=True)
    (device / "stash" / "step1").touch()  # step 1 installs the wheels: a pip run, not repeated here
    for step in ("2", "3"):
        assert setup(repo, device, step, "bundle").returncode == 0
    done = setup(repo, device, "4", "bundle", "c" * 40)
    assert done.returncode == 0, done.stderr
    assert (device / "stash" / "inception.pth").read_bytes() == weights
    assert (device / "stash" / "data" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz").read_bytes() == b"cifar"
    assert (device / "work" / "scripts" / "device_setup.sh").exists() and not (device / "work" / "bundle").exists()
    assert f"DIFFBENCH_COMMIT={'c' * 40}" in (device / "env.sh").read_text()
    (repo / "bundle" / "call4" / "inception.part2").write_bytes(b"corrupt")
    corrupt = setup(repo, device, "4", "bundle", "c" * 40)
    assert corrupt.returncode == 2 and "sha256 differs from the bundle's" in corrupt.stderr
