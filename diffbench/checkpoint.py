"""Checkpoint files: atomic writes, and loads that fail with one line naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from diffbench import atomic
from diffbench.errors import DiffbenchError
from diffbench.layout import rebuild_command

REQUIRED_MODEL_KEYS = ("format", "unet", "schedule", "timesteps", "ema")
MODEL_FORMAT = "diffbench-model-1"


def write_bytes_atomic(data: bytes, path: str | Path) -> None:
    """Write ``path`` whole or not at all (``diffbench.atomic``, the one atomic writer)."""
    atomic.write_bytes(path, data)


def write_text_atomic(text: str, path: str | Path) -> None:
    """UTF-8 text, written like ``write_bytes_atomic``."""
    atomic.write_text(path, text)


def save_atomic(obj: Any, path: str | Path) -> None:
    """torch.save ``obj`` atomically; equal objects give equal files (``atomic.save_torch``)."""
    atomic.save_torch(path, obj)


def load_file(path: str | Path, required: tuple[str, ...] = ()) -> dict:
    """torch.load a dict on the CPU; missing, unreadable or incomplete files fail naming the file."""
    path = Path(path)
    rebuild = rebuild_command(path)
    if not path.is_file():
        raise DiffbenchError(f"{path}: checkpoint not found; build it with `{rebuild}`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for damaged files
        fix = f"delete it, then `{rebuild}` trains from the start" if path.name == "checkpoint.pt" else \
            f"rebuild it with `{rebuild}`"
        raise DiffbenchError(f"{path}: corrupt or unreadable checkpoint ({type(error).__name__}); {fix}") from None
    if not isinstance(state, dict):
        raise DiffbenchError(f"{path}: not a diffbench checkpoint (expected a dict)")
    missing = [key for key in required if key not in state]
    if missing:
        raise DiffbenchError(f"{path}: not a diffbench checkpoint (missing {missing})")
    return state


def load_model_file(path: str | Path) -> dict:
    """A trained model file (EMA weights, U-Net config, schedule) as written by training."""
    state = load_file(path, REQUIRED_MODEL_KEYS)
    if state["format"] != MODEL_FORMAT:
        raise DiffbenchError(f"{path}: model format {state['format']!r}, expected {MODEL_FORMAT!r}")
    return state
