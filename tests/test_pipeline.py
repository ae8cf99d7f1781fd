"""`dvc repro` end to end in a temporary copy of the repository, on a toy image-folder dataset; then a new
sampler plugin (one file, one params line) and a guidance scale, which run only their own stages; a readable
`dvc metrics diff` / `dvc params diff`; a metrics change that rescoring covers without resampling."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.toy_profile import toy_archive, toy_params

from diffbench.metrics.inception import WEIGHTS_ENV
from tests.offline import needs_offline

ROOT = Path(__file__).resolve().parents[1]
DVC = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(DVC is None, reason="dvc is not installed"),
    needs_offline(WEIGHTS_ENV),
]


PLUGIN = '''"""A sampler plugin written by a user: deterministic DDIM under its own name (test input)."""

from diffbench.samplers.ddim import Settings, sample, timesteps  # noqa: F401

NAME = "mysampler"
'''


def outputs(repo: Path) -> dict[str, str]:
    """sha256 of every file under the pipeline's output folders."""
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("data", "features", "reference_models", "results", "reports")
            for p in sorted((repo / folder).rglob("*")) if p.is_file()}


def ran(output: str) -> set[str]:
    """Stages `dvc repro` ran (not the ones it skipped)."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def write_params(repo: Path, params: dict, env: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([sys.executable, "-m", "diffbench", "plan"], repo, env)


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
    data = tmp_path / "data" / "toy"
    data.mkdir(parents=True)
    toy_archive(data / "toy.tar.gz")
    env = os.environ | {"DIFFBENCH_DATA_DIR": str(tmp_path / "data"), "DIFFBENCH_DEVICE": "cpu",
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    write_params(repo, toy_params(), env)
    run(["git", "init", "-q"], repo, env)
    run([DVC, "init", "-q"], repo, env)
    run([DVC, "config", "core.analytics", "false"], repo, env)
    run([DVC, "repro"], repo, env)

    assert not list((repo / "results").rglob("partial"))  # resumable batches are removed once a run is whole
    reports = repo / "reports"
    for name in ("tables/ddpm_vs_ddim_toy.md", "tables/cfg_toy.csv", "tables/schedules_toy.md",
                 "tables/likelihood_toy.md", "plots/fid_vs_nfe_toy.png", "plots/quality_vs_cfg_toy.png",
                 "grids/toy-linear.png", "index.md"):
        assert (reports / name).is_file(), name
    summary = json.loads((reports / "summary.json").read_text())
    cfg2 = summary["toy"]["toy-cosine"]["ddim-5-cfg2"]
    assert cfg2["n_samples"] == 10 and cfg2["device"].startswith("cpu") and cfg2["fid"] > 0
    for metric in ("fid", "precision", "class_accuracy", "classifier_fid"):  # every metric with its interval
        assert cfg2[f"{metric}_lo"] <= cfg2[metric] <= cfg2[f"{metric}_hi"], metric
    assert "class_accuracy" not in summary["toy"]["toy-cosine"]["ddim-5-cfgnone"]  # unguided: no class asked
    assert "clip_score" not in cfg2  # no CLIP weights offline: never a number
    guided_pair = json.loads((repo / "results" / "toy-cosine" / "ddim-5-cfg2" / "metrics.json").read_text())
    timing = guided_pair["timing"]  # U-Net TFLOP/s over both passes of each guided step; no known CPU peak
    assert guided_pair["network_passes_per_image"] == 10 and timing["tflops_per_second"] > 0 and timing["mfu"] is None
    assert "CLIP score: unavailable" in (reports / "tables" / "cfg_toy.md").read_text()
    bound = summary["toy"]["toy-linear"]["elbo"]
    assert bound["bpd_lo"] < bound["bpd"] < bound["bpd_hi"] and bound["n_samples"] == 20
    classifier = json.loads((repo / "reference_models" / "toy-classifier" / "classifier.json").read_text())
    assert classifier["meets_min_accuracy"] is True  # dark squares vs bright stripes
    assert summary["toy"]["toy-linear"]["ddim-5-cfg1"]["deterministic"] is True
    ddpm = summary["toy"]["toy-linear"]["ddpm-20-cfg1"]
    assert ddpm["deterministic"] is False and ddpm["n_samples"] == 8 and ddpm["nfe"] == 20
    card = (repo / "reference_models" / "toy-linear" / "model_card.md").read_text()
    assert "| length | 6 steps" in card and "toy" in card
    guided = json.loads((repo / "results" / "toy-cosine" / "ddim-5-cfgnone-cg2" / "metrics.json").read_text())
    noisy = repo / "reference_models" / "toy-cosine-noisy-classifier"
    assert guided["classifier_guidance"]["scale"] == 2 and guided["guidance_scale"] is None
    assert guided["classifier_guidance"]["classifier_sha256"] == hashlib.sha256(
        (noisy / "noisy_classifier.pt").read_bytes()).hexdigest()
    assert guided["metrics"]["class_accuracy"] is not None  # classifier guidance asks for classes
    assert "classifier" in (reports / "tables" / "guidance_toy.md").read_text()
    assert (reports / "plots" / "guidance_tradeoff_toy.png").is_file() and (noisy / "model_card.md").is_file()
    assert (reports / "plots" / "noisy_classifier_toy.png").is_file()  # its accuracy by t

    # A params mistake fails at preflight in one line and leaves every output byte-identical.
    before = outputs(repo)
    good = (repo / "params.yaml").read_text()
    for path, value, message in (("samplers.ddim.kind", "nosuch", "unknown sampler kind 'nosuch'"),
                                 ("training.toy.steps", -5, "training.toy.steps")):
        broken = yaml.safe_load(good)
        *parents, last = path.split(".")
        node = broken
        for part in parents:
            node = node[part]
        node[last] = value
        (repo / "params.yaml").write_text(yaml.safe_dump(broken, sort_keys=False))
        failed = subprocess.run([DVC, "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert failed.returncode != 0 and message in failed.stdout + failed.stderr
        assert outputs(repo) == before, path
    (repo / "params.yaml").write_text(good)

    run(["git", "add", "-A"], repo, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"], repo, env)
    # A new sampler: one file plus one params line (and a new guidance scale) run only their own stages.
    (repo / "diffbench" / "samplers" / "mysampler.py").write_text(PLUGIN)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["samplers"]["mine"] = {"kind": "mysampler"}
    params["sweep"]["runs"].append("mine-5")
    params["guidance"]["scales"] = ["none", 3]
    write_params(repo, params, env)
    stages = ran(run([DVC, "repro"], repo, env))
    new_runs = {"toy-linear.mine-5-cfg1", "toy-cosine.mine-5-cfg1", "toy-cosine.ddim-5-cfg3"}
    assert stages == {"preflight", "report"} | {f"{s}@{r}" for s in ("generate", "score") for r in new_runs}
    diff = run([DVC, "metrics", "diff", "--md"], repo, env)
    assert "reports/summary.json" in diff and "ddim-5-cfg3" in diff and "mine-5-cfg1" in diff
    params_diff = run([DVC, "params", "diff"], repo, env)
    assert "guidance.scales" in params_diff and "samplers.mine" in params_diff
    table = (repo / "reports" / "tables" / "ddpm_vs_ddim_toy.md").read_text()
    assert "mysampler" in table or "mine" in table

    # A metrics change rescores every run and resamples none.
    params["metrics"]["kid_subsets"] = 4
    write_params(repo, params, env)
    status = run([DVC, "status"], repo, env)
    assert "score@toy-linear.ddim-5-cfg1" in status
    assert "generate@" not in status and "train@" not in status

    # The GPU shard's way: stages run in-process by diffbench.stage_runner, then `dvc commit` records them;
    # DVC then calls them current, as if `dvc repro` had run them.
    params["metrics"]["kid_subsets"] = 5
    params["guidance"]["scales"] = ["none", 3, 5]
    write_params(repo, params, env)
    new = ["generate@toy-cosine.ddim-5-cfg5", "score@toy-cosine.ddim-5-cfg5"]
    run([sys.executable, "-m", "diffbench.stage_runner", "--done", "done.txt", *new], repo, env)
    assert (repo / "done.txt").read_text().split() == new
    run([DVC, "commit", "--force", *new], repo, env)
    assert run([DVC, "status", *new], repo, env).strip().endswith("up to date.")
    assert json.loads((repo / "results" / "toy-cosine" / "ddim-5-cfg5" / "metrics.json").read_text())[
        "guidance_scale"] == 5
