"""`dvc repro` end to end in a temporary copy of the repository, on a toy image-folder dataset,
then one params change and a readable `dvc metrics diff` / `dvc params diff`."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DVC = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
WEIGHTS = os.environ.get("DIFFBENCH_INCEPTION_WEIGHTS")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(DVC is None, reason="dvc is not installed"),
    pytest.mark.skipif(not WEIGHTS, reason="set DIFFBENCH_INCEPTION_WEIGHTS (offline FID weights) for this test"),
]


def toy_archive(path: Path) -> None:
    """A 2-class 16×16 RGB image folder: dark squares vs bright stripes."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for split, count in (("train", 40), ("test", 20)):
            for label, name in enumerate(("dark", "bright")):
                for i in range(count // 2):
                    base = 40 + 150 * label
                    image = np.clip(rng.normal(base, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
                    buffer = io.BytesIO()
                    Image.fromarray(image).save(buffer, format="PNG")
                    info = tarfile.TarInfo(f"toy/{split}/{name}/{i:03d}.png")
                    info.size = buffer.tell()
                    buffer.seek(0)
                    tar.addfile(info, buffer)


def toy_params() -> dict:
    params = yaml.safe_load((ROOT / "profiles" / "quick" / "params.yaml").read_text())
    params["root"] = "."
    params["datasets"] = {"toy": {"kind": "imagefolder", "archive": "toy.tar.gz", "local": None}}
    params["diffusion"]["timesteps"] = 20
    params["architectures"] = {"toy": params["architectures"]["cifar10-jpeg"] | {"attn_resolutions": [8]}}
    params["training"] = {"toy": params["training"]["cifar10-jpeg"] | {"steps": 6, "checkpoint_every": 3, "log_every": 3}}
    params["models"] = {"datasets": ["toy"], "schedules": ["linear", "cosine"]}
    params["sampling"] |= {"n_samples": 8, "batch_size": 8, "determinism_images": 2}
    params["sweep"]["runs"] = ["ddpm-20", "ddim-5"]
    params["ablation"] |= {"runs": ["ddim_eta1-5"]}
    params["guidance"] |= {"run": "ddim-5", "scales": ["none", 2]}
    params["metrics"] |= {"reference_n": 20, "floor_n": 10, "batch_size": 16, "kid_subset_size": 8,
                          "kid_subsets": 5, "grid_images": 8, "interval_resamples": 5}
    params["metrics"]["clip"]["prompts"] = {"toy": "a photo of a {class} thing"}
    params["classifier"] = {"toy": params["classifier"]["cifar10-jpeg"] | {
        "epochs": 3, "batch_size": 8, "train_n": 0, "crop_padding": 2, "min_accuracy": 0.5}}
    params["elbo"] |= {"n_images": 20, "timesteps_per_image": 5, "batch_size": 20}
    return params


def run(args: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_dvc_repro_end_to_end_then_one_param_change(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("diffbench", "stages"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    (repo / "params.yaml").write_text(yaml.safe_dump(toy_params(), sort_keys=False))
    data = tmp_path / "data" / "toy"
    data.mkdir(parents=True)
    toy_archive(data / "toy.tar.gz")
    env = os.environ | {"DIFFBENCH_DATA_DIR": str(tmp_path / "data"), "DIFFBENCH_DEVICE": "cpu",
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run(["git", "init", "-q"], repo, env)
    run([DVC, "init", "-q"], repo, env)
    run([DVC, "config", "core.analytics", "false"], repo, env)
    run([DVC, "repro"], repo, env)

    reports = repo / "reports"
    for name in ("tables/ddpm_vs_ddim_toy.md", "tables/cfg_toy.csv", "tables/schedules_toy.md",
                 "tables/likelihood_toy.md", "plots/fid_vs_steps_toy.png", "plots/quality_vs_cfg_toy.png",
                 "grids/toy-linear.png", "index.md"):
        assert (reports / name).is_file(), name
    summary = json.loads((reports / "summary.json").read_text())
    cfg2 = summary["toy"]["toy-cosine"]["ddim-5-cfg2"]
    assert cfg2["n_samples"] == 8 and cfg2["device"].startswith("cpu") and cfg2["fid"] > 0
    for metric in ("fid", "precision", "class_accuracy", "classifier_fid"):  # every metric with its interval
        assert cfg2[f"{metric}_lo"] <= cfg2[metric] <= cfg2[f"{metric}_hi"], metric
    assert "class_accuracy" not in summary["toy"]["toy-cosine"]["ddim-5-cfgnone"]  # unguided: no class asked
    assert "clip_score" not in cfg2  # no CLIP weights offline: never a number
    assert "CLIP score: unavailable" in (reports / "tables" / "cfg_toy.md").read_text()
    bound = summary["toy"]["toy-linear"]["elbo"]
    assert bound["bpd_lo"] < bound["bpd"] < bound["bpd_hi"] and bound["n_samples"] == 20
    classifier = json.loads((repo / "reference_models" / "toy-classifier" / "classifier.json").read_text())
    assert classifier["meets_min_accuracy"] is True  # dark squares vs bright stripes
    assert summary["toy"]["toy-linear"]["ddim-5"]["deterministic"] is True
    assert summary["toy"]["toy-linear"]["ddpm-20"]["deterministic"] is False
    card = (repo / "reference_models" / "toy-linear" / "model_card.md").read_text()
    assert "steps | 6" in card and "toy" in card

    run(["git", "add", "-A"], repo, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"], repo, env)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["guidance"]["scales"] = ["none", 3]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run([DVC, "status"], repo, env)
    assert "train@" not in status  # a guidance change retrains nothing
    run([DVC, "repro"], repo, env)
    diff = run([DVC, "metrics", "diff", "--md"], repo, env)
    assert "reports/summary.json" in diff and "ddim-5-cfg3" in diff
    assert "guidance.scales" in run([DVC, "params", "diff"], repo, env)
