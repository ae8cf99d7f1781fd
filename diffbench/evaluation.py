"""Sample sets → metric records: features through the Inception network, metrics against the
cached reference features, and the provenance that travels with every number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffbench.distributed import device_name
from diffbench.hashing import sha256_file
from diffbench.metrics.fidelity import compute_all
from diffbench.metrics.inception import InceptionFeatures
from diffbench.metrics.reference import backend_info, check_compatible, load_reference


class Evaluator:
    """Scores uint8 image sets against one dataset's reference features."""

    def __init__(self, reference_path: str | Path, extractor: InceptionFeatures, metrics: dict, seed: int):
        self.reference_path = Path(reference_path)
        self.reference, self.reference_meta = load_reference(self.reference_path)
        self.extractor = extractor
        check_compatible(self.reference_meta, self.extractor)
        self.metrics, self.seed = metrics, seed

    def score(self, images: np.ndarray) -> dict:
        """FID, KID, precision/recall (and IS when the weights have logits) of ``images``."""
        features = self.extractor.extract(images, self.metrics["batch_size"])
        return compute_all(
            features, self.reference, kid_subset_size=self.metrics["kid_subset_size"],
            kid_subsets=self.metrics["kid_subsets"], prc_k=self.metrics["prc_k"], seed=self.seed,
        )

    def provenance(self, n_samples: int) -> dict:
        """What produced the numbers: backend, extractor weights, reference set, sample count."""
        meta = self.reference_meta
        return backend_info() | {
            "weights_sha256": self.extractor.weights_sha256,
            "n_samples": int(n_samples),
            "reference": {
                "dataset": meta["dataset"], "split": meta["split"], "n": meta["n"],
                "split_sha256": meta["split_sha256"], "features_sha256": sha256_file(self.reference_path),
            },
            "metric_seed": self.seed,
            "metric_device": device_name(torch.device(self.extractor.device)),
        }
