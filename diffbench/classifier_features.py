"""A trained reference classifier on the metric path: its features and logits, class accuracy, its file.

Scoring imports this module alone, never the training loop (``diffbench.classifier``), so a change to how the
classifier is trained does not make every score stale.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from diffbench import process_cache
from diffbench.checkpoint import load_file, save_atomic
from diffbench.diffusion import to_model_space
from diffbench.errors import DiffbenchError
from diffbench.hashing import sha256_file
from diffbench.metrics.inception import check_images
from diffbench.metrics.intervals import wilson_interval
from diffbench.progress import Progress
from diffbench.resnet9 import NetConfig, ResNet9

CLASSIFIER_FORMAT = "diffbench-classifier-1"
REQUIRED_KEYS = ("format", "net", "state_dict")
EXTRACTOR_NAME = "diffbench-resnet9"


class ClassifierFeatures:
    """A trained classifier as a feature extractor (the interface of ``InceptionFeatures``)."""

    name = EXTRACTOR_NAME

    def __init__(self, model: ResNet9, weights_sha256: str | None, device: str | torch.device, bf16: bool = False):
        self.model = model.to(device).eval()
        self.weights_sha256 = weights_sha256
        self.device = torch.device(device)
        self.bf16 = bf16 and self.device.type == "cuda"

    def extract(self, images: np.ndarray, batch_size: int, label: str = "classifier features") -> dict[str, np.ndarray]:
        """{"pool": N×8w penultimate features, "logits": N×K}, float32, of uint8 N×H×W×C images;
        progress is reported under ``label``."""
        check_images(images)
        net = self.model.net
        if images.shape[1:] != (net.height, net.width, net.channels):
            raise DiffbenchError(
                f"the classifier takes {net.height}×{net.width}×{net.channels} images, "
                f"got {'×'.join(map(str, images.shape[1:]))}"
            )
        if batch_size < 1:
            raise DiffbenchError(f"feature extraction batch_size must be >= 1, got {batch_size}")
        pools, logits = [], []
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16), \
                Progress(label, len(images), "images") as progress:
            for start in range(0, len(images), batch_size):
                chunk = np.ascontiguousarray(images[start : start + batch_size])
                batch = to_model_space(torch.from_numpy(chunk).to(self.device))
                pool, logit = self.model.features_and_logits(batch)
                pools.append(pool.float().cpu().numpy())
                logits.append(logit.float().cpu().numpy())
                progress.update(len(chunk))
        return {"pool": np.concatenate(pools), "logits": np.concatenate(logits)}


def class_accuracy(logits: np.ndarray, requested_labels: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(accuracy, lo, hi): share of samples the classifier assigns to their requested class, with a
    Wilson interval."""
    logits, labels = np.asarray(logits), np.asarray(requested_labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise DiffbenchError(f"class_accuracy needs N×K logits and N labels, got {logits.shape} and {labels.shape}")
    hits = int((logits.argmax(1) == labels).sum())
    return wilson_interval(hits, len(labels), level)


# --------------------------------------------------------------------------- files


def save_classifier(path: str | Path, model: ResNet9, provenance: dict) -> None:
    """Write the classifier file (format tag, network config, weights on the CPU, provenance) atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    file = {"format": CLASSIFIER_FORMAT, "net": asdict(model.net), "state_dict": state, "provenance": provenance}
    save_atomic(file, path)


def load_classifier(path: str | Path, device: str | torch.device, bf16: bool = False) -> ClassifierFeatures:
    """The extractor of a file written by :func:`save_classifier`; its weights_sha256 is the file's. Loaded once per
    process when the process cache is on."""
    return process_cache.cached(("classifier", process_cache.file_key(path), str(device), bf16),
                                lambda: _load_classifier(path, device, bf16))


def _load_classifier(path: str | Path, device: str | torch.device, bf16: bool) -> ClassifierFeatures:
    state = load_file(path, REQUIRED_KEYS)
    if state["format"] != CLASSIFIER_FORMAT:
        raise DiffbenchError(f"{path}: classifier format {state['format']!r}, expected {CLASSIFIER_FORMAT!r}")
    try:
        model = ResNet9(NetConfig(**state["net"]))
        model.load_state_dict(state["state_dict"])
    except (TypeError, RuntimeError) as error:
        detail = (str(error).strip().splitlines() or [""])[0]
        raise DiffbenchError(
            f"{path}: classifier weights do not fit its network ({type(error).__name__}: {detail})"
        ) from None
    return ClassifierFeatures(model, sha256_file(path), device, bf16)
