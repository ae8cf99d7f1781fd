"""params.yaml ``classifier.<dataset>``: the reference classifier's width and training recipe, validated
(a leaf module: params validation needs it without importing the network or its trainer)."""

from __future__ import annotations

from dataclasses import dataclass

from diffbench.errors import ParamsError
from diffbench.validation import typed_section

CONFIG_KEYS = {
    "width": int, "epochs": int, "batch_size": int, "lr": float, "weight_decay": float,
    "label_smoothing": float, "crop_padding": int, "hflip": bool, "train_n": int, "bf16": bool, "compile": bool,
}


@dataclass(frozen=True)
class ClassifierConfig:
    """params.yaml ``classifier.<dataset>``: network width and the training recipe."""

    width: int  # channels of the first stage; later stages use 2×, 4×, 8×
    epochs: int
    batch_size: int
    lr: float  # peak of the one-cycle schedule
    weight_decay: float
    label_smoothing: float
    crop_padding: int  # reflect-pad by this many pixels, then crop at a random offset (0: no crop)
    hflip: bool  # random horizontal flips (never for digits)
    train_n: int  # train on a seeded random subset of this size (0: the whole split)
    bf16: bool  # bf16 autocast on CUDA
    compile: bool  # torch.compile the training forward pass
    min_accuracy: float | None = None  # test accuracy the classifier should reach (recorded, not enforced)

    @classmethod
    def from_params(cls, entry: object, where: str) -> ClassifierConfig:
        """Validate ``entry`` (the params mapping at ``where``); every problem is one ParamsError line."""
        if not isinstance(entry, dict):
            raise ParamsError(f"{where}: must be a mapping with {', '.join(CONFIG_KEYS)} (and optional min_accuracy)")
        typed_section(entry, CONFIG_KEYS, where, untyped=("min_accuracy",))
        for key in ("width", "epochs", "batch_size"):
            if entry[key] < 1:
                raise ParamsError(f"{where}.{key}: must be >= 1, got {entry[key]}")
        if entry["lr"] <= 0:
            raise ParamsError(f"{where}.lr: must be > 0, got {entry['lr']}")
        if not entry["label_smoothing"] < 1:
            raise ParamsError(f"{where}.label_smoothing: must be in [0, 1), got {entry['label_smoothing']}")
        if entry["train_n"] and entry["train_n"] < entry["batch_size"]:
            raise ParamsError(
                f"{where}.train_n: must be 0 (all) or >= batch_size ({entry['batch_size']}), got {entry['train_n']}"
            )
        minimum = entry.get("min_accuracy")
        number = isinstance(minimum, (int, float)) and not isinstance(minimum, bool)
        if minimum is not None and not (number and 0 <= minimum <= 1):
            raise ParamsError(f"{where}.min_accuracy: must be null or a number in [0, 1], got {minimum!r}")
        return cls(**entry)


def config_for(section: object, dataset: str) -> ClassifierConfig:
    """``classifier.<dataset>`` of params (``section`` is ``params.raw.get("classifier")``), validated."""
    if not isinstance(section, dict):
        raise ParamsError(f"classifier: missing section; it maps each dataset to {', '.join(CONFIG_KEYS)}")
    if dataset not in section:
        raise ParamsError(f"classifier.{dataset}: missing; configured: {', '.join(map(str, section)) or 'none'}")
    return ClassifierConfig.from_params(section[dataset], f"classifier.{dataset}")
