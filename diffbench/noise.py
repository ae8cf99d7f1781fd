"""Per-image Gaussian noise from a counter-based hash: one seed per image, as in NVlabs/edm.

``image_noise(seeds, stream, shape)`` is a pure function of (image seed, stream, element index): the
noise an image receives does not depend on which batch, process or GPU draws it, and drawing it is a
handful of vectorised integer ops — no Python loop over images or generators. Stream 0 is x_T; the
samplers use stream k ≥ 1 for the noise injected at their k-th step.

Bits: the 32-bit ``lowbias32`` integer hash (C. Wellons) chained over seed, stream and counter; two
24-bit uniforms per element feed a Box–Muller transform. Integer ops run in int64 with explicit
32-bit masks, so CPU and CUDA compute the same bits.
"""

from __future__ import annotations

import math

import torch

_MASK32 = 0xFFFFFFFF


def _lowbias32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' lowbias32 hash on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def _uniform(bits: torch.Tensor) -> torch.Tensor:
    """Map 32-bit hashes to float32 uniforms strictly inside (0, 1), 24 bits of resolution."""
    return ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def image_noise(
    seeds: torch.Tensor, stream: int, shape: tuple[int, ...], device: torch.device | str | None = None
) -> torch.Tensor:
    """Standard normal noise of shape (len(seeds), *shape); row i depends only on (seeds[i], stream)."""
    return streams_noise(seeds, stream, 1, shape, device)[0]


def streams_noise(
    seeds: torch.Tensor, first: int, n_streams: int, shape: tuple[int, ...], device: torch.device | str | None = None
) -> torch.Tensor:
    """``image_noise`` of streams ``first`` … ``first + n_streams - 1`` in one pass, shape (n_streams, len(seeds),
    *shape): the same bits as one call per stream (every op is elementwise), with one set of kernel launches for
    all of them. The stream keys are made on the device (no host-to-device copy, which would wait for the GPU); the
    int64 product wraps past 2^63, which leaves the 32 low bits kept exact."""
    device = seeds.device if device is None else torch.device(device)
    seeds = seeds.to(device=device, dtype=torch.int64) & _MASK32
    streams = torch.arange(int(first), int(first) + n_streams, device=device, dtype=torch.int64)
    key = _lowbias32(_lowbias32(seeds)[None, :] ^ (streams * 0x9E3779B9 & _MASK32)[:, None])
    count = math.prod(shape)
    counter = torch.arange(count, device=device, dtype=torch.int64)
    # Hash the counter before mixing, so two keys never give shifted copies of one noise vector.
    mixed = key[:, :, None] ^ _lowbias32(counter)[None, None, :]
    u1 = _uniform(_lowbias32(mixed))
    u2 = _uniform(_lowbias32(mixed ^ 0x5BD1E995))
    normal = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
    return normal.reshape(n_streams, len(seeds), *shape)


class StepNoise:
    """A sampler's ``noise(k)``: stream ``offset + k`` of the image seeds, drawn ``block`` streams at a time
    (``streams_noise``) so that a long sampler (DDPM-1000) pays the hash's ~70 kernel launches once per block
    instead of once per step. The same bits as ``image_noise(seeds, offset + k, shape)`` for any k, in any order.

    ``last`` is the largest k the sampler is expected to ask for (its step count): a block never reaches past
    it, so a 10-step sampler draws 10 streams, not a whole block. ``max_elements`` bounds a block's size
    (its int64 intermediates are ~8 bytes an element each)."""

    def __init__(self, seeds: torch.Tensor, offset: int, shape: tuple[int, ...], last: int,
                 max_elements: int = 1 << 25) -> None:
        self.seeds, self.offset, self.shape, self.last = seeds, offset, shape, last
        self.block = max(1, max_elements // max(1, len(seeds) * math.prod(shape)))
        self.start, self.cache = 0, torch.empty(0)

    def __call__(self, k: int) -> torch.Tensor:
        if not self.start <= k < self.start + len(self.cache):
            stop = max(k + 1, min(k + self.block, self.last + 1))
            self.start = k
            self.cache = streams_noise(self.seeds, self.offset + k, stop - k, self.shape)
        return self.cache[k - self.start]


def parse_seeds(spec: str) -> list[int]:
    """Seeds from an edm-style range spec: ``"0-9999"``, ``"0,5,7"`` or ``"0-3,10"``."""
    seeds: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        if "-" in part:
            low, high = (int(v) for v in part.split("-", 1))
            seeds.extend(range(low, high + 1))
        elif part:
            seeds.append(int(part))
    return seeds
