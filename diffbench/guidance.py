"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper every sampler uses.

ε̃(x, t) = ε(x, t, ∅) + s · (ε(x, t, y) − ε(x, t, ∅))

s = 1 is plain conditional sampling (one forward pass), s = 0 is unconditional, s > 1 extrapolates.
Ho & Salimans write ε̃ = (1 + w) ε(x, y) − w ε(x, ∅), so w = s − 1: their w = 0.3 is our s = 1.3.
``scale=None`` means unguided: the model is asked with the null label ∅ only.
"""

from __future__ import annotations

import torch

from diffbench.errors import ParamsError
from diffbench.samplers import EpsFn


def check_scale(scale: float | None, where: str = "guidance.scales") -> None:
    """A guidance scale is None (unguided) or a finite number ≥ 0."""
    if scale is None:
        return
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale < float("inf"):
        raise ParamsError(f"{where}: a guidance scale must be a number >= 0 or 'none', got {scale!r}")


def guided_eps(
    model: torch.nn.Module, labels: torch.Tensor | None, scale: float | None, null_label: int
) -> EpsFn:
    """ε(x, t) with labels and guidance scale bound; output in float32."""
    check_scale(scale, "guidance scale")

    def unconditional(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        null = torch.full((x.shape[0],), null_label, device=x.device, dtype=torch.long)
        return model(x, t, null).float()

    if scale is None or labels is None:
        return unconditional

    def conditional(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x, t, labels).float()

    if scale == 1:
        return conditional

    null = torch.full_like(labels, null_label)
    both_labels = torch.cat([labels, null])

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_cond, eps_uncond = model(torch.cat([x, x]), torch.cat([t, t]), both_labels).float().chunk(2)
        return eps_uncond + scale * (eps_cond - eps_uncond)

    return guided
