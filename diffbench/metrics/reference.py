"""Reference features on disk: one ``.npz`` with the features and a JSON record of what made them."""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch_fidelity

from diffbench import atomic
from diffbench.errors import DiffbenchError
from diffbench.layout import rebuild_command
from diffbench.metrics.inception import EXTRACTOR_NAME

META_KEY = "meta_json"
FEATURE_KEYS = ("pool", "logits")


def backend_info() -> dict:
    """The metric backend and feature extractor, for provenance records."""
    return {"backend": "torch-fidelity", "version": torch_fidelity.__version__, "feature_extractor": EXTRACTOR_NAME}


def reference_meta(dataset: str, split: str, n: int, split_sha256: str, extractor) -> dict:
    """Metadata for :func:`save_reference`: the data, the extractor and its weights, the backend version."""
    return {
        "dataset": dataset,
        "split": split,
        "n": int(n),
        "split_sha256": split_sha256,
        "feature_extractor": extractor.name,
        "weights_sha256": extractor.weights_sha256,
        "torch_fidelity_version": torch_fidelity.__version__,
    }


def save_reference(path: Path, features: dict, meta: dict) -> None:
    """Write ``features`` ("pool", optional "logits") and ``meta`` to ``path`` atomically."""
    path = Path(path)
    arrays = {key: np.asarray(features[key]) for key in FEATURE_KEYS if features.get(key) is not None}
    if "pool" not in arrays:
        raise DiffbenchError(f"reference features for {path} have no 'pool' array")
    meta_array = np.array(json.dumps(meta, sort_keys=True))
    # a file handle keeps numpy from appending ".npz"
    atomic.write_with(path, lambda handle: np.savez(handle, **arrays, **{META_KEY: meta_array}))


def load_reference(path: Path) -> tuple[dict, dict]:
    """(features, meta) from a file written by :func:`save_reference`; DiffbenchError naming it otherwise."""
    path = Path(path)
    rebuild = f"rebuild it with `{rebuild_command(path)}`"
    if not path.is_file():
        raise DiffbenchError(f"reference features file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("pool", META_KEY) if key not in data.files]
            if missing:
                raise DiffbenchError(f"reference features file {path} lacks {' and '.join(missing)}; {rebuild}")
            meta = json.loads(str(data[META_KEY]))
            features = {key: data[key] for key in FEATURE_KEYS if key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # JSONDecodeError: ValueError
        raise DiffbenchError(
            f"reference features file {path} is unreadable or corrupt ({type(exc).__name__}); {rebuild}"
        ) from None
    if features["pool"].ndim != 2 or not isinstance(meta, dict):
        raise DiffbenchError(f"reference features file {path} has no N×D 'pool' array or no metadata dict; {rebuild}")
    return features, meta


def check_compatible(meta: dict, extractor) -> None:
    """Raise DiffbenchError unless ``meta`` was made by the same extractor with the same weights."""
    for key, ours in (("feature_extractor", extractor.name), ("weights_sha256", extractor.weights_sha256)):
        theirs = meta.get(key)
        if theirs != ours:
            raise DiffbenchError(
                f"reference features were made with {key}={theirs}, but the current extractor has {ours}; "
                f"recompute the reference (delete the cached file) or use the same Inception weights"
            )
