"""The FID Inception-v3 feature extractor, through torch-fidelity's own network.

Weights come from an explicit path (params field ``metrics.inception_weights``), else from the
``DIFFBENCH_INCEPTION_WEIGHTS`` environment variable, else torch-fidelity downloads its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch_fidelity.feature_extractor_inceptionv3 import (
    URL_INCEPTION_V3,
    FeatureExtractorInceptionV3,
)

from diffbench import process_cache
from diffbench.errors import DiffbenchError
from diffbench.hashing import sha256_file
from diffbench.metrics.weights import local_weights_file
from diffbench.progress import Progress

WEIGHTS_ENV = "DIFFBENCH_INCEPTION_WEIGHTS"
EXTRACTOR_NAME = "inception-v3-compat"
POOL_LAYER = "2048"
# The layer torch-fidelity's Inception Score reads by default (logits without the fc bias).
LOGITS_LAYER = "logits_unbiased"


def resolve_weights(path: str | None) -> str | None:
    """Weights file to use: ``path`` if given, else $DIFFBENCH_INCEPTION_WEIGHTS, else None (download)."""
    return local_weights_file(
        path, "metrics.inception_weights", WEIGHTS_ENV, "Inception",
        f"set params metrics.inception_weights or ${WEIGHTS_ENV} to an existing file, or leave both unset to download",
    )


def downloaded_weights_path() -> Path | None:
    """Where torch.hub keeps torch-fidelity's downloaded Inception weights, if that file exists."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(URL_INCEPTION_V3)
    return path if path.is_file() else None


class InceptionFeatures:
    """torch-fidelity's ``inception-v3-compat`` network: 2048-d pool features, plus logits if the weights have them."""

    name = EXTRACTOR_NAME

    def __init__(self, model: FeatureExtractorInceptionV3, weights_sha256: str | None, device: str):
        self.model = model
        self.weights_sha256 = weights_sha256
        self.device = device
        self.has_logits = bool(torch.isfinite(model.fc.weight).all() and torch.isfinite(model.fc.bias).all())
        # fc holds NaN in the offline weights: then never compute (NaN) logits at all.
        model.features_list = [POOL_LAYER, LOGITS_LAYER] if self.has_logits else [POOL_LAYER]

    def extract(self, images: np.ndarray, batch_size: int, label: str = "Inception features") -> dict[str, np.ndarray]:
        """Features of uint8 N×H×W×C images (C = 1 or 3): {"pool": N×2048, "logits": N×1008 if has_logits};
        progress is reported under ``label``.

        Arrays are float32, as torch-fidelity's own extraction returns them. Images are resized to
        299×299 inside the network (torch-fidelity's TF-compatible bilinear resize).
        """
        check_images(images)
        if batch_size < 1:
            raise DiffbenchError(f"feature extraction batch_size must be >= 1, got {batch_size}")
        chunks: dict[str, list[np.ndarray]] = {layer: [] for layer in self.model.features_list}
        with torch.inference_mode(), Progress(label, len(images), "images") as progress:
            for start in range(0, len(images), batch_size):
                batch = as_nchw_rgb(images[start : start + batch_size]).to(self.device)
                out = self.model.convert_features_tuple_to_dict(self.model(batch))
                for layer, value in out.items():
                    chunks[layer].append(value.cpu().numpy())
                progress.update(len(batch))
        result = {"pool": np.concatenate(chunks[POOL_LAYER])}
        if self.has_logits:
            result["logits"] = np.concatenate(chunks[LOGITS_LAYER])
        return result


def check_images(images: np.ndarray) -> None:
    """DiffbenchError unless ``images`` is a non-empty uint8 N×H×W×C array with C in (1, 3)."""
    ok = isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
    if not ok or images.shape[3] not in (1, 3) or len(images) == 0:
        shape = getattr(images, "shape", None)
        dtype = getattr(images, "dtype", type(images).__name__)
        raise DiffbenchError(f"images must be a non-empty uint8 N×H×W×C array with C in (1, 3), got {dtype} {shape}")


def as_nchw_rgb(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W×C (C = 1 or 3) array → uint8 N×3×H×W tensor; grayscale is repeated to 3 channels."""
    check_images(images)
    tensor = torch.tensor(images).permute(0, 3, 1, 2)  # a copy: also fine for read-only (memmap) input
    return tensor.expand(-1, 3, -1, -1).contiguous()


def load_inception(weights: str | None, device: str) -> InceptionFeatures:
    """Build the extractor on ``device`` from ``weights`` (resolved with :func:`resolve_weights`); once per process
    when the process cache is on."""
    path = resolve_weights(weights)
    key = ("inception", process_cache.file_key(path) if path is not None else None, str(device))
    return process_cache.cached(key, lambda: _load_inception(path, device))


def _load_inception(path: str | None, device: str) -> InceptionFeatures:
    try:
        model = FeatureExtractorInceptionV3(
            EXTRACTOR_NAME, [POOL_LAYER], feature_extractor_weights_path=path, verbose=False
        )
    except Exception as exc:  # torch.load / load_state_dict / download failures
        where = path if path is not None else URL_INCEPTION_V3
        detail = (str(exc).strip().splitlines() or [""])[0]
        raise DiffbenchError(
            f"cannot load Inception weights from {where} ({type(exc).__name__}: {detail}); "
            f"set metrics.inception_weights or ${WEIGHTS_ENV} to a torch-fidelity inception-v3-compat state dict"
        ) from exc
    if path is None:
        path = downloaded_weights_path()
    sha = sha256_file(path) if path is not None else None
    return InceptionFeatures(model.to(device), sha, device)
