"""params.yaml ``elbo``: which images are bounded, with how many middle terms per image (K) and which
reverse process, validated (a leaf module: params validation needs it without the bound's math)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from diffbench.data import SPLITS
from diffbench.errors import DiffbenchError, ParamsError
from diffbench.validation import typed_section

VARIANCES = ("large", "small")
ELBO_KEYS = {  # params.yaml elbo.<key> -> type; timesteps_per_image (int or null) is checked apart
    "split": str, "n_images": int, "batch_size": int, "variance": str, "clip_x0": bool, "conditional": bool,
    "bf16": bool,
}


def check_variance(variance: Any, where: str = "variance") -> None:
    """The variance of p_θ(x_{t−1} | x_t) is named ``large`` (β_t) or ``small`` (β̃_t)."""
    if variance not in VARIANCES:
        raise DiffbenchError(f"{where}: must be one of {', '.join(VARIANCES)}, got {variance!r}")


def resolve_k(k: Any, timesteps: int, where: str = "timesteps_per_image") -> int:
    """K, the middle terms evaluated per image: an integer in 1..T−1; None means all (exact)."""
    middle = timesteps - 1
    if k is None:
        return middle
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= middle:
        raise DiffbenchError(f"{where}: must be an integer in 1..{middle} (T-1) or null (exact), got {k!r}")
    return k


@dataclass(frozen=True)
class ElboSettings:
    """params.yaml ``elbo``: which images, how many middle terms per image (K), which p_θ."""

    split: str
    n_images: int
    timesteps_per_image: int | None  # K; null = exact (all T−1)
    batch_size: int
    variance: str
    clip_x0: bool
    conditional: bool  # True: −log p(x|y) with the true label; False: −log p(x) with the null label
    bf16: bool

    @classmethod
    def from_params(cls, section: Any, timesteps: int) -> ElboSettings:
        """Validated settings; every problem is one ParamsError line naming ``elbo.<field>``."""
        if not isinstance(section, dict):
            raise ParamsError(f"elbo: missing section (a mapping with {', '.join(f.name for f in fields(cls))})")
        typed_section(section, ELBO_KEYS, "elbo", untyped=("timesteps_per_image",))
        if "timesteps_per_image" not in section:
            raise ParamsError("elbo.timesteps_per_image: missing (an integer in 1..T-1, or null for the exact bound)")
        if section["split"] not in SPLITS:
            raise ParamsError(f"elbo.split: must be one of {', '.join(SPLITS)}, got {section['split']!r}")
        for key in ("n_images", "batch_size"):
            if section[key] < 1:
                raise ParamsError(f"elbo.{key}: must be >= 1, got {section[key]}")
        try:
            check_variance(section["variance"], "elbo.variance")
            resolve_k(section["timesteps_per_image"], timesteps, "elbo.timesteps_per_image")
        except DiffbenchError as error:
            raise ParamsError(str(error)) from None
        return cls(**section)

    @property
    def conditioning(self) -> str:
        return "true label: bound on -log p(x|y)" if self.conditional else "null label: bound on -log p(x)"
