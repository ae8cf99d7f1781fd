"""GroupNorm whose statistics may come from per-channel moments: the same function, other kernels.

``nn.GroupNorm`` reduces each (image, group) over its C/G channels and all pixels. With activations in
channels-last order, as inductor lays out the U-Net's convolutions, a group's values are C/G-wide runs
every C elements, and the fused GroupNorm reductions inductor generates ran at about a third of the
bandwidth a coalesced read would reach (37.5% of a compiled DDIM step of the CIFAR U-Net on an H200,
reports/performance.md of 8b1fb76). ``channel_moments`` computes the same statistics in two steps that
read contiguously in either layout: every channel's mean of d and of d² over the pixels (d = x less the
channel's first pixel, so the fp32 variance E[d²] − E[d]² does not cancel), then the group's mean and
variance from those, in fp32 as GroupNorm computes under autocast.

Which one a layer runs is the model's setting (params ``architectures.<dataset>.group_norm_moments``): it
changes how the statistics are computed, not the parameters, so a checkpoint loads into either. Measured
on one H200 (reports/performance.md, fd03ce9): CIFAR U-Net training 1.11× and DDIM-50 sampling 1.16×,
MNIST U-Net 1.04× and 1.27×, the same mean loss. That run's moments were unshifted; the shift (one
subtraction more in the same reduction) came after it and is measured at the next benchmark run.
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
    F.group_norm returns: fp32 under CUDA autocast (group_norm is on its fp32 list), x's dtype otherwise.

    The moments are taken about a shift, each image's first pixel of each channel, so that E[d²] − E[d]² does
    not cancel catastrophically where a channel's mean is far from zero against its spread (unshifted, a
    mean 1,000 standard deviations from zero left nothing of the variance in fp32); the group's variance is
    then the average of its channels' variances plus the spread of their means (the law of total variance)."""
    n, c = x.shape[:2]
    xf = x.float()
    pixels = tuple(range(2, x.dim()))
    shift = xf[(slice(None), slice(None)) + (slice(0, 1),) * len(pixels)].detach()  # n × c × 1 …: a value of each
    d = xf - shift
    mean_d, square_d = d.mean(dim=pixels), (d * d).mean(dim=pixels)  # n × c, one read of x
    mean_c = mean_d + shift.flatten(1)  # every channel's mean
    variance_c = (square_d - mean_d * mean_d).clamp_min(0)
    mean = mean_c.view(n, groups, -1).mean(-1)
    spread = (mean_c.view(n, groups, -1) - mean[..., None]).square()
    variance = (variance_c.view(n, groups, -1) + spread).mean(-1)
    rstd = torch.rsqrt(variance + eps)
    scale = rstd.repeat_interleave(c // groups, dim=1)  # n × c
    shift_out = -mean.repeat_interleave(c // groups, dim=1) * scale
    if weight is not None:
        scale, shift_out = scale * weight.float(), shift_out * weight.float()
    if bias is not None:
        shift_out = shift_out + bias.float()
    view = (n, c) + (1,) * (x.dim() - 2)
    out = xf * scale.view(view) + shift_out.view(view)
    return out if x.is_cuda and torch.is_autocast_enabled("cuda") else out.to(x.dtype)
