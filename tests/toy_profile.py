"""A toy image-folder dataset and the quick profile shrunk to it: inputs for tests that run real stages."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


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
    params["shards"] = {"toy": ["toy-linear", "toy-cosine"]}
    params["sampling"] |= {"n_samples": 10, "batch_size": 10, "determinism_images": 2,
                           "n_samples_per_setting": {"ddpm": 8}}
    params["sweep"]["runs"] = ["ddim-5"]
    params["ablation"] |= {"schedule": "linear", "runs": ["ddpm-20", "ddim_eta1-5"]}
    params["guidance"] |= {"run": "ddim-5", "scales": ["none", 2], "classifier_scales": [0, 2]}
    params["noisy_classifier"] = {"toy": params["noisy_classifier"]["cifar10-jpeg"] | {
        "steps": 6, "batch_size": 8, "log_every": 3, "eval_n": 10, "eval_timesteps": 3}}
    params["metrics"] |= {"reference_n": 20, "floor_n": 10, "batch_size": 16, "kid_subset_size": 8,
                          "kid_subsets": 5, "grid_images": 8, "interval_resamples": 5}
    params["metrics"]["clip"]["prompts"] = {"toy": "a photo of a {class} thing"}
    params["classifier"] = {"toy": params["classifier"]["cifar10-jpeg"] | {
        "epochs": 3, "batch_size": 8, "train_n": 0, "crop_padding": 2, "min_accuracy": 0.5}}
    params["elbo"] |= {"n_images": 20, "timesteps_per_image": 5, "batch_size": 20}
    return params
