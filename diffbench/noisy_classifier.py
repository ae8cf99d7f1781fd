"""The noise-aware classifier p_φ(y | x_t, t) of classifier guidance (Dhariwal & Nichol 2021), and its file.

The network is guided-diffusion's ``EncoderUNetModel`` built from diffbench's U-Net blocks: the U-Net's
down path (residual blocks with the timestep embedding, self-attention at the listed resolutions,
strided-conv downsampling), its middle block (res, attention, res), then GroupNorm → SiLU → attention
pooling (the mean token attends over all positions plus a learned position embedding, CLIP style) →
logits. There is no class embedding: the class is what it predicts. It is GroupNorm throughout, so in
eval mode each image's logits (and gradient) are independent of the rest of the batch.

A classifier is trained for one noise schedule and T: its t means nothing under another. The file
records both, and :func:`load_noisy_classifier` refuses any other schedule or T in one line. The file
holds the network config, the weights and provenance without paths or timings, serialised through
memory so that the same weights give the same bytes whatever the file name.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffbench import atomic
from diffbench.checkpoint import load_file
from diffbench.diffusion import NoiseSchedule
from diffbench.errors import DiffbenchError, ParamsError
from diffbench.unet import AttnBlock, Downsample, ResBlock, check_levels, timestep_embedding

NOISY_CLASSIFIER_FORMAT = "diffbench-noisy-classifier-1"
REQUIRED_KEYS = ("format", "net", "state_dict")
POOL_HEAD_CHANNELS = 64  # guided-diffusion's num_head_channels of the attention pool


@dataclass(frozen=True)
class NoisyClassifierConfig:
    """What rebuilds the network, and the schedule and T its timesteps belong to."""

    image_size: int
    in_channels: int
    num_classes: int
    schedule: str
    timesteps: int
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    dropout: float = 0.0
    norm_groups: int = 32

    def validate(self, where: str = "noisy_classifier") -> None:
        """Fail with one line on impossible shapes or values."""
        positive = ("image_size", "in_channels", "timesteps", "channels", "num_res_blocks", "norm_groups")
        for key in positive:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParamsError(f"{where}.{key}: must be an integer >= 1, got {value!r}")
        if self.num_classes < 2:
            raise ParamsError(f"{where}: a classifier needs at least 2 classes, got {self.num_classes}")
        if not self.channel_mult or any(not isinstance(m, int) or m < 1 for m in self.channel_mult):
            raise ParamsError(f"{where}.channel_mult: must be a non-empty list of integers >= 1")
        check_levels(self, where)

    @property
    def final_size(self) -> int:
        """Spatial size after the down path."""
        return self.image_size // 2 ** (len(self.channel_mult) - 1)


def check_trained_for(config: NoisyClassifierConfig, schedule: NoiseSchedule, where: str) -> None:
    """A classifier is usable only with the schedule name and T it was trained for."""
    if (config.schedule, config.timesteps) != (schedule.name, schedule.timesteps):
        raise DiffbenchError(
            f"{where}: noisy classifier trained for schedule {config.schedule!r} with T={config.timesteps}, "
            f"but the model uses {schedule.name!r} with T={schedule.timesteps}; train one for it"
        )


class AttentionPool2d(nn.Module):
    """The mean token attends over [mean, positions] with a learned position embedding (CLIP / guided-diffusion)."""

    def __init__(self, size: int, channels: int, out_dim: int):
        super().__init__()
        self.position = nn.Parameter(torch.randn(channels, size * size + 1) / channels**0.5)
        self.heads = channels // POOL_HEAD_CHANNELS if channels % POOL_HEAD_CHANNELS == 0 else 1
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        tokens = x.reshape(b, c, -1)
        tokens = torch.cat([tokens.mean(dim=-1, keepdim=True), tokens], dim=-1) + self.position.to(x.dtype)
        # (B, 3C, L) → three (B, heads, L, C/heads)
        q, k, v = self.qkv(tokens).reshape(b, 3, self.heads, c // self.heads, -1).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # only the mean token's output is used
        return self.proj(out.transpose(-1, -2).reshape(b, c, 1))[:, :, 0]


class NoisyClassifier(nn.Module):
    """Logits of p_φ(y | x_t, t) for model-space x_t (N×C×H×W) and timesteps t (N,), int or float."""

    def __init__(self, config: NoisyClassifierConfig):
        super().__init__()
        config.validate()
        self.config = config
        ch, groups = config.channels, config.norm_groups
        temb_dim = 4 * ch
        self.temb_mlp = nn.Sequential(nn.Linear(ch, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        width, size = ch, config.image_size
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                self.down.append(ResBlock(width, ch * mult, temb_dim, config.dropout, groups))
                width = ch * mult
                if size in config.attn_resolutions:
                    self.down.append(AttnBlock(width, groups))
            if level != len(config.channel_mult) - 1:
                self.down.append(Downsample(width))
                size //= 2
        self.mid = nn.ModuleList([
            ResBlock(width, width, temb_dim, config.dropout, groups), AttnBlock(width, groups),
            ResBlock(width, width, temb_dim, config.dropout, groups),
        ])
        self.norm_out = nn.GroupNorm(groups, width)
        self.pool = AttentionPool2d(size, width, config.num_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.temb_mlp(timestep_embedding(t, self.config.channels).to(x.dtype))
        h = self.conv_in(x)
        for block in [*self.down, *self.mid]:
            h = block(h, temb) if isinstance(block, ResBlock) else block(h)
        return self.pool(F.silu(self.norm_out(h)))


# --------------------------------------------------------------------------- files


def classifier_bytes(model: NoisyClassifier, provenance: dict) -> bytes:
    """The file's bytes: format tag, network config, CPU weights, provenance (no paths or timings)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    file = {"format": NOISY_CLASSIFIER_FORMAT, "net": asdict(model.config), "state_dict": state,
            "provenance": provenance}
    buffer = io.BytesIO()  # through memory: torch names the archive after the file, bytes would differ by name
    torch.save(file, buffer)
    return buffer.getvalue()


def save_noisy_classifier(path: str | Path, model: NoisyClassifier, provenance: dict) -> None:
    """Write the classifier file atomically; the same weights and provenance give the same bytes."""
    atomic.write_bytes(path, classifier_bytes(model, provenance))


def load_noisy_classifier(
    path: str | Path, schedule: NoiseSchedule, device: str | torch.device = "cpu"
) -> NoisyClassifier:
    """The classifier of ``path`` on ``device``, in eval mode with frozen weights, for ``schedule``
    (fails in one line if it was trained for another schedule or T, or the file is not one)."""
    state = load_file(path, REQUIRED_KEYS)
    if state["format"] != NOISY_CLASSIFIER_FORMAT:
        raise DiffbenchError(f"{path}: format {state['format']!r}, expected {NOISY_CLASSIFIER_FORMAT!r}")
    net = dict(state["net"])
    for key in ("channel_mult", "attn_resolutions"):
        net[key] = tuple(net.get(key, ()))
    try:
        config = NoisyClassifierConfig(**net)
    except TypeError as error:
        raise DiffbenchError(f"{path}: noisy classifier config does not fit this diffbench ({error})") from None
    check_trained_for(config, schedule, str(path))
    model = NoisyClassifier(config)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        detail = (str(error).strip().splitlines() or [""])[0]
        raise DiffbenchError(f"{path}: weights do not fit the noisy classifier ({detail})") from None
    return model.to(device).eval().requires_grad_(False)
