"""Checkpoint files: atomic writes, and loads that fail with one line naming the file."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from diffbench.errors import DiffbenchError

REQUIRED_MODEL_KEYS = ("format", "unet", "schedule", "timesteps", "ema")
MODEL_FORMAT = "diffbench-model-1"


def write_bytes_atomic(data: bytes, path: str | Path) -> None:
    """Write ``path`` via a temporary file, fsync and rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_text_atomic(text: str, path: str | Path) -> None:
    """UTF-8 text, written like ``write_bytes_atomic``."""
    write_bytes_atomic(text.encode(), path)


def save_atomic(obj: Any, path: str | Path) -> None:
    """torch.save ``obj`` atomically. Serialised in memory, so the bytes depend only on ``obj``
    (torch names the archive after the file otherwise): equal objects give equal files."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(buffer.getvalue(), path)


def load_file(path: str | Path, required: tuple[str, ...] = ()) -> dict:
    """torch.load a dict on the CPU; missing, unreadable or incomplete files fail naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DiffbenchError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for damaged files
        raise DiffbenchError(
            f"{path}: corrupt or unreadable checkpoint ({type(error).__name__}); delete it to start over"
        ) from None
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
