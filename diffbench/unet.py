"""The ε-prediction U-Net of Ho et al. 2020 (their `diffusion_tf/models/unet.py`), in PyTorch.

Wide residual blocks with GroupNorm and dropout, single-head self-attention at the listed
resolutions (16×16 on CIFAR-10), a sinusoidal timestep embedding through a 2-layer MLP, and an
optional class embedding (index ``num_classes`` is the null label ∅ of classifier-free guidance)
added to the timestep embedding. At the CIFAR-10 width (ch=128, mult 1,2,2,2, 2 blocks, attention
at 16) it has 35.7M parameters, as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from diffbench.errors import ParamsError
from diffbench.group_norm import GroupNorm
from diffbench.validation import check_widths


@dataclass(frozen=True)
class UNetConfig:
    """Architecture hyper-parameters (params.yaml ``architectures.<name>``)."""

    image_size: int = 32
    in_channels: int = 3
    channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    num_classes: int = 0
    norm_groups: int = 32
    group_norm_moments: bool = False  # GroupNorm statistics from per-channel moments (diffbench.group_norm): speed only

    @classmethod
    def from_params(cls, entry: dict, image_size: int, in_channels: int, num_classes: int) -> "UNetConfig":
        """Build from a params entry; unknown keys fail naming the key."""
        allowed = {"channels", "channel_mult", "num_res_blocks", "attn_resolutions", "dropout", "norm_groups",
                   "group_norm_moments"}
        unknown = set(entry) - allowed
        if unknown:
            raise ParamsError(f"architectures: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        values = dict(entry)
        for key in ("channel_mult", "attn_resolutions"):
            if key in values:
                values[key] = tuple(values[key])
        config = cls(image_size=image_size, in_channels=in_channels, num_classes=num_classes, **values)
        config.validate()
        return config

    def signature(self) -> dict:
        """The fields that change what the network computes (not ``group_norm_moments``: how)."""
        return {k: v for k, v in asdict(self).items() if k != "group_norm_moments"}

    def validate(self) -> None:
        """Fail with one line on impossible shapes."""
        check_levels(self, "architectures")


def check_levels(config: Any, where: str) -> None:
    """The shape rules of a U-Net's down path (this U-Net's and the noisy classifier's encoder): every width
    divisible by ``norm_groups``, dropout in [0, 1) (``check_widths``), every halving of ``image_size`` even;
    one line naming ``where``.<field> otherwise."""
    check_widths(config.channels, config.channel_mult, config.norm_groups, config.dropout, where)
    size = config.image_size
    for _ in config.channel_mult[:-1]:
        if size % 2:
            raise ParamsError(
                f"{where}.channel_mult: {len(config.channel_mult)} levels halve {config.image_size}px "
                f"to an odd size {size}; use fewer levels"
            )
        size //= 2


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (Transformer / Ho et al. `get_timestep_embedding`)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv → +time → GroupNorm → SiLU → dropout → conv, with a 1×1 skip if widths differ."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, dropout: float, groups: int, moments: bool = False):
        super().__init__()
        self.norm1 = GroupNorm(groups, in_ch, moments)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb = nn.Linear(temb_dim, out_ch)
        self.norm2 = GroupNorm(groups, out_ch, moments)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, residual.

    q, k and v come out of one matmul over pixel tokens (b × hw × c, channels last), the layout the flash
    and memory-efficient kernels of ``scaled_dot_product_attention`` take: with channels strided by hw (a
    1×1 convolution's output transposed) PyTorch fell back to its math kernel, which computes half-precision
    inputs in fp32 without tensor cores (17% of a DDIM step of the CIFAR U-Net on an H200,
    reports/performance.md of f87a81a). The weights keep the 1×1 convolutions' shapes, so checkpoints load.
    """

    def __init__(self, ch: int, groups: int, moments: bool = False):
        super().__init__()
        self.norm = GroupNorm(groups, ch, moments)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # b × hw × c
        q, k, v = F.linear(tokens, self.qkv.weight.flatten(1), self.qkv.bias).chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        out = F.linear(out, self.proj.weight.flatten(1), self.proj.bias)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    """3×3 convolution with stride 2."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2 then 3×3 convolution."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """ε_θ(x_t, t, y): predicts the noise in x_t. ``y`` may be None (unconditional or ∅)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        ch, groups, moments = config.channels, config.norm_groups, config.group_norm_moments
        temb_dim = 4 * ch
        self.temb_mlp = nn.Sequential(nn.Linear(ch, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        self.label_emb = nn.Embedding(config.num_classes + 1, temb_dim) if config.num_classes else None
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)

        def res(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, temb_dim, config.dropout, groups, moments)

        self.down = nn.ModuleList()
        skip_widths, width, size = [ch], ch, config.image_size
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                blocks = [res(width, ch * mult)]
                width = ch * mult
                if size in config.attn_resolutions:
                    blocks.append(AttnBlock(width, groups, moments))
                self.down.append(nn.ModuleList(blocks))
                skip_widths.append(width)
            if level != len(config.channel_mult) - 1:
                self.down.append(nn.ModuleList([Downsample(width)]))
                skip_widths.append(width)
                size //= 2
        self.mid = nn.ModuleList([res(width, width), AttnBlock(width, groups, moments), res(width, width)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for _ in range(config.num_res_blocks + 1):
                blocks = [res(width + skip_widths.pop(), ch * mult)]
                width = ch * mult
                if size in config.attn_resolutions:
                    blocks.append(AttnBlock(width, groups, moments))
                self.up.append(nn.ModuleList(blocks))
            if level != 0:
                self.up.append(nn.ModuleList([Upsample(width)]))
                size *= 2
        self.norm_out = GroupNorm(groups, width, moments)
        self.conv_out = nn.Conv2d(width, config.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def null_label(self) -> int:
        """The label index that means ∅ (no class) for classifier-free guidance."""
        return self.config.num_classes

    def _run(self, blocks: nn.ModuleList, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            h = block(h, temb) if isinstance(block, ResBlock) else block(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        temb = self.temb_mlp(timestep_embedding(t, self.config.channels).to(x.dtype))
        if self.label_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.null_label, device=x.device, dtype=torch.long)
            temb = temb + self.label_emb(y)
        h = self.conv_in(x)
        skips = [h]
        for blocks in self.down:
            h = self._run(blocks, h, temb)
            skips.append(h)
        h = self._run(self.mid, h, temb)
        for blocks in self.up:
            if isinstance(blocks[0], ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(blocks, h, temb)
        return self.conv_out(F.silu(self.norm_out(h)))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
