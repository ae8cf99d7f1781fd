"""The ResNet-9 of David Page's DAWNBench CIFAR-10 entry, the reference classifier's network: prep conv, three
conv-BN-ReLU stages with max-pooling, two residual blocks, global max-pool, a linear head scaled by 1/8."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LOGIT_SCALE = 0.125  # Page's output scaling: small initial logits, a smoother loss early on


@dataclass(frozen=True)
class NetConfig:
    """What the network needs to be rebuilt: image shape, classes, width."""

    height: int
    width: int
    channels: int
    num_classes: int
    base_width: int

    @property
    def feature_dim(self) -> int:
        return 8 * self.base_width


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3×3 conv (no bias), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + conv_bn(conv_bn(x))."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """Page's ResNet-9: widths w, 2w, 4w, 8w; 8w-d penultimate features; logits scaled by 1/8."""

    def __init__(self, net: NetConfig):
        super().__init__()
        self.net = net
        w = net.base_width
        self.body = nn.Sequential(
            conv_bn(net.channels, w),
            conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),
            conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
            conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(8 * w, net.num_classes, bias=False)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N×8w penultimate features, N×K logits) of model-space images N×C×H×W in [−1, 1]."""
        features = self.body(x)
        return features, self.head(features) * LOGIT_SCALE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]
