"""params.yaml ``noisy_classifier.<dataset>``: the noise-aware classifier's encoder shape and training recipe,
validated (a leaf module: params validation needs it without importing the network or its trainer)."""

from __future__ import annotations

from dataclasses import dataclass

from diffbench.errors import ParamsError
from diffbench.validation import positive_ints, typed_section

ARCHITECTURE_KEYS = {
    "channels": int, "channel_mult": list, "num_res_blocks": int, "attn_resolutions": list, "dropout": float,
    "norm_groups": int,
}
TRAINING_KEYS = {
    "steps": int, "batch_size": int, "lr": float, "weight_decay": float, "label_smoothing": float, "hflip": bool,
    "bf16": bool, "compile": bool, "log_every": int, "eval_n": int, "eval_timesteps": int,
}
CONFIG_KEYS = ARCHITECTURE_KEYS | TRAINING_KEYS


@dataclass(frozen=True)
class NoisyClassifierTraining:
    """params.yaml ``noisy_classifier.<dataset>``: the encoder's shape and the training recipe."""

    channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    dropout: float
    norm_groups: int
    steps: int
    batch_size: int
    lr: float  # AdamW peak
    weight_decay: float
    label_smoothing: float
    hflip: bool
    bf16: bool  # bf16 autocast on CUDA (training and evaluation; guidance always takes fp32 gradients)
    compile: bool  # torch.compile the training forward pass
    log_every: int
    eval_n: int  # test images scored at each evaluated t
    eval_timesteps: int  # evenly spaced t from 0 to T−1 in the accuracy-by-t table

    @classmethod
    def from_params(cls, entry: object, where: str, timesteps: int) -> NoisyClassifierTraining:
        """Validate ``entry`` (the params mapping at ``where``); every problem is one ParamsError line."""
        if not isinstance(entry, dict):
            raise ParamsError(f"{where}: must be a mapping with {', '.join(CONFIG_KEYS)}")
        typed_section(entry, CONFIG_KEYS, where)
        for key in ("channels", "num_res_blocks", "norm_groups", "steps", "batch_size", "log_every", "eval_n"):
            if entry[key] < 1:
                raise ParamsError(f"{where}.{key}: must be >= 1, got {entry[key]}")
        positive_ints(entry, "channel_mult", where)
        positive_ints(entry, "attn_resolutions", where, empty=True)
        if entry["lr"] <= 0:
            raise ParamsError(f"{where}.lr: must be > 0, got {entry['lr']}")
        for key in ("label_smoothing", "dropout"):
            if not entry[key] < 1:
                raise ParamsError(f"{where}.{key}: must be in [0, 1), got {entry[key]}")
        if not 2 <= entry["eval_timesteps"] <= timesteps:
            raise ParamsError(f"{where}.eval_timesteps: must be in 2..{timesteps} (T), got {entry['eval_timesteps']}")
        values = dict(entry)
        for key in ("channel_mult", "attn_resolutions"):
            values[key] = tuple(entry[key])
        return cls(**values)


def config_for(section: object, dataset: str, timesteps: int) -> NoisyClassifierTraining:
    """``noisy_classifier.<dataset>`` of params (``section`` is ``params.raw.get("noisy_classifier")``), validated."""
    if not isinstance(section, dict):
        raise ParamsError(f"noisy_classifier: missing section; it maps each dataset to {', '.join(CONFIG_KEYS)}")
    if dataset not in section:
        raise ParamsError(f"noisy_classifier.{dataset}: missing; configured: {', '.join(map(str, section)) or 'none'}")
    return NoisyClassifierTraining.from_params(section[dataset], f"noisy_classifier.{dataset}", timesteps)
