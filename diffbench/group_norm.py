"""GroupNorm whose statistics may come from per-channel moments: the same function, other kernels.

``nn.GroupNorm`` reduces each (image, group) over its C/G channels and all pixels. With activations in
channels-last order, as inductor lays out the U-Net's convolutions, a group's values are C/G-wide runs
every C elements, and the fused GroupNorm reductions inductor generates ran at about a third of the
bandwidth a coalesced read would reach (37.5% of a compiled DDIM step of the CIFAR U-Net on an H200,
reports/performance.md of 8b1fb76). ``channel_moments`` computes the same statistics in two steps that
read contiguously in either layout: every channel's mean of x and of x² over the pixels, then the group's
average of those. Variance as E[x²] − E[x]² in fp32, as GroupNorm computes in fp32 under autocast.

Which implementation ``nn.GroupNorm`` layers run is a process-wide setting (``implementation``), like an
inductor option: it changes how the statistics are computed, not the parameters (checkpoints are the
same). A switch drops TorchDynamo's compiled code (``torch._dynamo.reset``: dynamo would otherwise reuse a
graph traced with the other forward), so switch before compiling. Only the benchmarks switch it
(``benchmarks/inductor_levers.py``); the pipeline runs ``F.group_norm``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

def _moments_forward(self: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    return channel_moments(x, self.num_groups, self.weight, self.bias, self.eps)


FORWARDS = {"native": nn.GroupNorm.forward, "channel_moments": _moments_forward}  # implementation -> forward


def current() -> str:
    """The implementation nn.GroupNorm layers use now."""
    return next(name for name, forward in FORWARDS.items() if nn.GroupNorm.forward is forward)


@contextmanager
def implementation(name: str) -> Iterator[None]:
    """nn.GroupNorm layers use ``name`` (a key of FORWARDS) inside the block; the previous one after it."""
    if name not in FORWARDS:
        raise ValueError(f"group norm implementation {name!r}: not one of {', '.join(FORWARDS)}")
    previous = nn.GroupNorm.forward
    _set_forward(FORWARDS[name])
    try:
        yield
    finally:
        _set_forward(previous)


def _set_forward(forward) -> None:
    """nn.GroupNorm.forward = ``forward``, and TorchDynamo's compiled code dropped when it changes: dynamo does
    not guard on a module class's forward, so a model compiled before would go on running the other one."""
    if nn.GroupNorm.forward is not forward:
        nn.GroupNorm.forward = forward
        torch._dynamo.reset()


def channel_moments(x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
                    eps: float) -> torch.Tensor:
    """F.group_norm(x, groups, weight, bias, eps) from per-channel moments (fp32 statistics), in the dtype
    F.group_norm returns: fp32 under CUDA autocast (group_norm is on its fp32 list), x's dtype otherwise."""
    n, c = x.shape[:2]
    xf = x.float()
    pixels = tuple(range(2, x.dim()))
    mean_c, square_c = xf.mean(dim=pixels), (xf * xf).mean(dim=pixels)  # n × c, one read of x
    mean = mean_c.view(n, groups, -1).mean(-1)
    variance = (square_c.view(n, groups, -1).mean(-1) - mean * mean).clamp_min(0)
    rstd = torch.rsqrt(variance + eps)
    scale = rstd.repeat_interleave(c // groups, dim=1)  # n × c
    shift = -mean.repeat_interleave(c // groups, dim=1) * scale
    if weight is not None:
        scale, shift = scale * weight.float(), shift * weight.float()
    if bias is not None:
        shift = shift + bias.float()
    view = (n, c) + (1,) * (x.dim() - 2)
    out = xf * scale.view(view) + shift.view(view)
    return out if x.is_cuda and torch.is_autocast_enabled("cuda") else out.to(x.dtype)

