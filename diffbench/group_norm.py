"""GroupNorm whose statistics may come from per-channel moments: the same function, other kernels.

``nn.GroupNorm`` reduces each (image, group) over its C/G channels and all pixels. With activations in
channels-last order, as inductor lays out the U-Net's convolutions, a group's values are C/G-wide runs
every C elements, and the fused GroupNorm reductions inductor generates ran at about a third of the
bandwidth a coalesced read would reach (37.5% of a compiled DDIM step of the CIFAR U-Net on an H200,
reports/performance.md of 8b1fb76). ``channel_moments`` computes the same statistics in two steps that
read contiguously in either layout: every channel's mean of x and of x² over the pixels, then the group's
average of those. Variance as E[x²] − E[x]² in fp32, as GroupNorm computes in fp32 under autocast.

Which one a layer runs is the model's setting (params ``architectures.<dataset>.group_norm_moments``): it
changes how the statistics are computed, not the parameters, so a checkpoint loads into either. Measured
on one H200 (reports/performance.md, fd03ce9): CIFAR U-Net training 1.11× and DDIM-50 sampling 1.16×,
MNIST U-Net 1.04× and 1.27×, the same mean loss.
"""

from __future__ import annotations

import torch
from torch import nn


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters and state-dict keys) that computes its statistics from per-channel
    moments when ``moments`` is set, with ``F.group_norm`` otherwise."""

    def __init__(self, num_groups: int, num_channels: int, moments: bool = False, eps: float = 1e-5):
        super().__init__(num_groups, num_channels, eps=eps)
        self.moments = moments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.moments:
            return channel_moments(x, self.num_groups, self.weight, self.bias, self.eps)
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", moments=True" if self.moments else "")


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

