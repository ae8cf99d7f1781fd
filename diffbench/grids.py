"""Sample grids: uint8 images tiled into one PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from diffbench import atomic


def tile(images: np.ndarray, columns: int, pad: int = 2) -> np.ndarray:
    """uint8 N×H×W×C → one uint8 image, ``columns`` per row, white padding between tiles."""
    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[top : top + h, left : left + w] = image
    return canvas


def save_grid(images: np.ndarray, path: str | Path, columns: int = 10, scale: int = 2) -> None:
    """Write a PNG grid (nearest-neighbour upscaled ``scale``×)."""
    canvas = tile(images, columns)
    picture = Image.fromarray(canvas[..., 0] if canvas.shape[-1] == 1 else canvas)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    atomic.write_with(path, lambda handle: picture.save(handle, format="PNG"))
