"""The variational bound of Ho et al. 2020 (eq. 5) on −log p(x_0), in bits per dimension.

    L = L_T + Σ_{t=2..T} L_{t−1} + L_0                              (nats per image)
    L_T     = KL(q(x_T | x_0) ‖ N(0, I))                            no network
    L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))        x_t ~ q(x_t | x_0)
    L_0     = −log p_θ(x_0 | x_1)                                   discretized Gaussian decoder
    bits/dim = L / (D ln 2),  D = C·H·W

as in Ho et al.'s official code (diffusion_utils_2.py, ``calc_bpd_loop``): p_θ's mean is the DDPM
mean μ̃_t(x_t, x̂_0) with x̂_0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t, clipped to [−1, 1] when ``clip_x0`` (their
default; unclipped it is eq. 11's (x_t − β_t/√(1−ᾱ_t) ε_θ)/√α_t). Its variance is ``large`` (β_t) or
``small`` (β̃_t); at the first step both use β̃_2, as their clipped log-variances do. The decoder puts
a Gaussian over the 256 bins of width 2/255 on [−1, 1], edge bins extended to ±∞; bin masses use
the exact normal CDF (their code uses a tanh approximation) through ``log_ndtr`` in float64, so no
mass is clamped. All KL and likelihood math is float64; only the network sees float32 (or bf16).

Timesteps are 0-based as in ``diffbench.diffusion``: index t is the paper's t+1, so L_0 is index 0
and the middle sum runs over indices 1..T−1 (M = T−1 terms, one forward pass each).

Monte Carlo: with K < M the middle sum is estimated by stratified sampling: the indices 1..T−1 are
split into K contiguous strata of sizes ⌊M/K⌋ or ⌈M/K⌉, one t is drawn uniformly in each and its term
weighted by its stratum's size. The estimate is unbiased for every image; K = M is the exact sum.
L_T and L_0 are always exact.

Randomness is per image, from ``diffbench.noise.image_noise`` keyed by the image's seed, so the
bound of an image does not depend on batch size or process count:
- the K uniforms of the stratified draws: Φ(z), z = image_noise(seed, TIME_STREAM, (K,));
- the noise of x_t at index t: image_noise(seed·T + t, XT_STREAM, (C, H, W)) — the same in exact and
  Monte Carlo mode, so an estimate is a weighted subset of its image's exact terms.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields

import numpy as np
import torch

from diffbench.diffusion import NoiseSchedule, broadcast, q_sample, to_model_space
from diffbench.elbo_settings import ElboSettings, check_variance, resolve_k
from diffbench.errors import DiffbenchError, ParamsError
from diffbench.generation import LoadedModel
from diffbench.guidance import guided_eps
from diffbench.metrics.intervals import mean_interval
from diffbench.noise import image_noise
from diffbench.progress import Progress
from diffbench.samplers import EpsFn

TIME_STREAM = 0
XT_STREAM = 1
BIN_HALF_WIDTH = 1.0 / 255.0
_MAX_SEED = 0xFFFFFFFF
# --------------------------------------------------------------------------- Gaussian math (nats)


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − eˣ) for x ≤ 0, accurate near 0 and for large |x| (Mächler 2012)."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_normal_mass(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """log(Φ(upper) − Φ(lower)) for lower < upper (±inf allowed), computed in the lower tail by symmetry."""
    flip = lower > 0
    a = torch.where(flip, -upper, lower)
    b = torch.where(flip, -lower, upper)
    log_b = torch.special.log_ndtr(b)
    return log_b + _log1mexp(torch.special.log_ndtr(a) - log_b)


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log P(bin of x) under N(mean, e^{2 log_scale}); x on the 256-value grid of [−1, 1].

    Bin of x: [x − 1/255, x + 1/255], the lowest extended to −∞ and the highest to +∞.
    """
    inv_scale = torch.exp(-log_scale)
    upper = torch.where(x > 0.999, math.inf, (x - mean + BIN_HALF_WIDTH) * inv_scale)
    lower = torch.where(x < -0.999, -math.inf, (x - mean - BIN_HALF_WIDTH) * inv_scale)
    return log_normal_mass(lower, upper)


# --------------------------------------------------------------------------- the terms of the bound


@dataclass(frozen=True)
class ReverseProcess:
    """Per-timestep float64 coefficients of q(x_{t−1} | x_t, x_0) and of p_θ(x_{t−1} | x_t)."""

    alpha_bar: torch.Tensor
    coef_x0: torch.Tensor  # posterior mean = coef_x0·x_0 + coef_xt·x_t
    coef_xt: torch.Tensor
    posterior_log_var: torch.Tensor  # log β̃_t, index 0 (β̃_1 = 0) replaced by β̃_2
    model_log_var: torch.Tensor  # log σ_t² of p_θ: β̃_t (small) or β_t (large); index 0 → β̃_2

    @classmethod
    def build(cls, schedule: NoiseSchedule, variance: str, device: torch.device | str) -> ReverseProcess:
        check_variance(variance)
        if schedule.timesteps < 2:
            raise DiffbenchError(f"schedule: the bound needs T >= 2 timesteps, got {schedule.timesteps}")
        betas, alpha_bar = schedule.betas, schedule.alpha_bar
        alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
        posterior_var = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
        step_var = posterior_var if variance == "small" else betas
        values = {
            "alpha_bar": alpha_bar,
            "coef_x0": betas * np.sqrt(alpha_bar_prev) / (1 - alpha_bar),
            "coef_xt": (1 - alpha_bar_prev) * np.sqrt(schedule.alphas) / (1 - alpha_bar),
            "posterior_log_var": np.log(np.append(posterior_var[1], posterior_var[1:])),
            "model_log_var": np.log(np.append(posterior_var[1], step_var[1:])),
        }
        return cls(**{k: torch.as_tensor(v, dtype=torch.float64, device=device) for k, v in values.items()})

    def at(self, name: str, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """Coefficient ``name`` at per-image timesteps ``t``, shaped to broadcast over ``ndim`` dims."""
        return broadcast(getattr(self, name), t, ndim)

    def model_mean(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clip_x0: bool) -> torch.Tensor:
        """μ_θ(x_t, t) = μ̃_t(x_t, x̂_0), x̂_0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t (clipped to [−1, 1] if asked)."""
        a = self.at("alpha_bar", t, x_t.ndim)
        x0_hat = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        if clip_x0:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        return self.posterior_mean(x0_hat, x_t, t)

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """μ̃_t(x_t, x_0) of q(x_{t−1} | x_t, x_0) (Ho et al. eq. 7)."""
        return self.at("coef_x0", t, x0.ndim) * x0 + self.at("coef_xt", t, x0.ndim) * x_t


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.flatten(1).sum(1)


def prior_kl(process: ReverseProcess, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) ‖ N(0, I)) per image, nats."""
    a = process.alpha_bar[-1]
    zero = torch.zeros((), dtype=x0.dtype, device=x0.device)
    return _per_image(normal_kl(a.sqrt() * x0, torch.log1p(-a).expand_as(x0), zero, zero))


def posterior_kl(
    process: ReverseProcess, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clip_x0: bool
) -> torch.Tensor:
    """L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) per image, nats, for indices t ≥ 1."""
    n = x0.ndim
    return _per_image(normal_kl(
        process.posterior_mean(x0, x_t, t), process.at("posterior_log_var", t, n),
        process.model_mean(x_t, t, eps, clip_x0), process.at("model_log_var", t, n),
    ))


def decoder_nll(process: ReverseProcess, x0: torch.Tensor, x_1: torch.Tensor, eps: torch.Tensor, clip_x0: bool) -> torch.Tensor:
    """L_0 = −log p_θ(x_0 | x_1) per image, nats (ε = ε_θ(x_1, index 0))."""
    t = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)
    log_scale = 0.5 * process.at("model_log_var", t, x0.ndim)
    return -_per_image(discretized_gaussian_log_likelihood(x0, process.model_mean(x_1, t, eps, clip_x0), log_scale))


# --------------------------------------------------------------------------- per-image randomness


def strata(timesteps: int, k: int) -> np.ndarray:
    """K+1 boundaries splitting indices 1..T−1 into K contiguous strata: stratum j is [b_j, b_{j+1})."""
    middle = timesteps - 1
    return 1 + (np.arange(k + 1) * middle) // k


def stratified_timesteps(seeds: torch.Tensor, timesteps: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image one index t uniform in each stratum (B×K, long) and the strata sizes (K, float64 weights)."""
    bounds = torch.as_tensor(strata(timesteps, k), device=seeds.device)
    low, size = bounds[:-1], bounds[1:] - bounds[:-1]
    u = torch.special.ndtr(image_noise(seeds, TIME_STREAM, (k,)).double())
    offset = torch.minimum((u * size).long(), size - 1)
    return low + offset, size.double()


def xt_noise(seeds: torch.Tensor, t: torch.Tensor, timesteps: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The ε of x_t for image ``seeds[i]`` at index ``t[i]``: image_noise(seed·T + t, XT_STREAM)."""
    return image_noise(seeds * timesteps + t, XT_STREAM, shape)


# --------------------------------------------------------------------------- the bound of a batch


@dataclass
class ElboTerms:
    """Per-image bound and its parts in bits/dim (float64 arrays of one length)."""

    prior: np.ndarray  # L_T
    decoder: np.ndarray  # L_0
    middle: np.ndarray  # Σ_{t=2..T} L_{t−1} (exact, or its stratified estimate)

    @property
    def total(self) -> np.ndarray:
        """L_T + L_0 + the middle sum: the bound of each image."""
        return self.prior + self.decoder + self.middle

    @classmethod
    def concat(cls, parts: list[ElboTerms]) -> ElboTerms:
        """Batches joined in order."""
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def _check_batch(images: torch.Tensor, seeds: torch.Tensor, timesteps: int) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DiffbenchError(f"images: must be uint8 N x H x W x (1|3), got {images.dtype} {tuple(images.shape)}")
    if seeds.dtype != torch.int64 or seeds.shape != images.shape[:1]:
        raise DiffbenchError(f"seeds: must be int64 with one seed per image, got {seeds.dtype} {tuple(seeds.shape)}")
    if len(seeds) and (int(seeds.min()) < 0 or int(seeds.max()) * timesteps + timesteps - 1 > _MAX_SEED):
        raise DiffbenchError(f"seeds: must be in 0..{(_MAX_SEED + 1) // timesteps - 1} (seed*T + t < 2^32)")


def _noised(
    eps_fn: EpsFn, schedule: NoiseSchedule, x0: torch.Tensor, seeds: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t ~ q(x_t | x_0) from the image's own noise, and ε_θ(x_t, t) in float64."""
    noise = xt_noise(seeds, t, schedule.timesteps, tuple(x0.shape[1:]))
    x_t = q_sample(schedule, x0.float(), t, noise)
    return x_t.double(), eps_fn(x_t, t).double()


@torch.no_grad()
def bound(
    eps_fn: EpsFn, schedule: NoiseSchedule, images: torch.Tensor, seeds: torch.Tensor,
    timesteps_per_image: int | None = None, variance: str = "large", clip_x0: bool = True,
) -> ElboTerms:
    """The bound of each image (uint8 N×H×W×C tensor on eps_fn's device) with 1 + K forward passes.

    ``timesteps_per_image`` = K (None: all T−1, exact); ``seeds`` (int64, one per image) key all randomness.
    """
    T = schedule.timesteps
    k = resolve_k(timesteps_per_image, T)
    process = ReverseProcess.build(schedule, variance, images.device)
    _check_batch(images, seeds, T)
    seeds = seeds.to(images.device)
    x0 = to_model_space(images).double()
    prior = prior_kl(process, x0)
    zeros = torch.zeros_like(seeds)
    decoder = decoder_nll(process, x0, *_noised(eps_fn, schedule, x0, seeds, zeros), clip_x0)
    draws, weights = stratified_timesteps(seeds, T, k)
    middle = torch.zeros_like(prior)
    for j in range(k):
        t = draws[:, j]
        x_t, eps = _noised(eps_fn, schedule, x0, seeds, t)
        middle += weights[j] * posterior_kl(process, x0, x_t, t, eps, clip_x0)
    to_bpd = 1.0 / (math.prod(x0.shape[1:]) * math.log(2.0))
    return ElboTerms(*(v.cpu().numpy() * to_bpd for v in (prior, decoder, middle)))


# --------------------------------------------------------------------------- params and a model on a split


def check_inputs(model: LoadedModel, images: np.ndarray, labels: np.ndarray, settings: ElboSettings) -> None:
    """Fail before any forward pass on images, labels or settings that do not fit the model."""
    c, h, w = model.image_shape
    if images.dtype != np.uint8 or images.shape[1:] != (h, w, c):
        raise DiffbenchError(f"images: the model needs uint8 N x {h} x {w} x {c}, got {images.dtype} {images.shape}")
    if labels.shape != images.shape[:1]:
        raise DiffbenchError(f"labels: need one per image ({len(images)}), got shape {labels.shape}")
    if settings.n_images > len(images):
        raise ParamsError(f"elbo.n_images: {settings.n_images} > the {len(images)} images of the {settings.split} split")
    if settings.conditional:
        if not model.num_classes:
            raise ParamsError("elbo.conditional: the model has no class labels; use conditional: false")
        used = labels[: settings.n_images]
        if used.min() < 0 or used.max() >= model.num_classes:
            raise DiffbenchError(f"labels: must be in 0..{model.num_classes - 1} for this model")


def _model_eps(model: LoadedModel, labels: torch.Tensor | None, bf16: bool) -> EpsFn:
    """ε_θ(x, t) given the true labels, or the null label when ``labels`` is None; bf16 autocast if asked."""
    eps = guided_eps(model.forward, labels, None if labels is None else 1.0, model.num_classes)
    device_type = next(model.net.parameters()).device.type

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            return eps(x_t, t)

    return eps_fn


@dataclass
class PerImage:
    """This process's share of the images: their seeds (= index in the split), bounds and the time taken."""

    seeds: np.ndarray
    terms: ElboTerms
    seconds: float


def evaluate(
    model: LoadedModel, images: np.ndarray, labels: np.ndarray, settings: ElboSettings, rank: int = 0, world_size: int = 1,
    label: str = "ELBO",
) -> PerImage:
    """The bound of images[i] (seed i) for i in range(n_images)[rank::world_size], in batches; rank 0
    reports its progress under ``label``."""
    check_inputs(model, images, labels, settings)
    device = next(model.net.parameters()).device
    mine = torch.arange(settings.n_images, dtype=torch.int64)[rank::world_size]
    use_bf16 = settings.bf16 and device.type == "cuda"
    parts: list[ElboTerms] = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with Progress(label, len(mine), "images", enabled=rank == 0) as progress:
        for chunk in mine.split(settings.batch_size):
            x = torch.from_numpy(images[chunk.numpy()]).to(device)
            y = torch.from_numpy(labels[chunk.numpy()].astype(np.int64)).to(device)
            eps_fn = _model_eps(model, y if settings.conditional else None, use_bf16)
            parts.append(bound(eps_fn, model.schedule, x, chunk.to(device), settings.timesteps_per_image,
                               settings.variance, settings.clip_x0))
            progress.update(len(chunk))
    seconds = time.perf_counter() - start
    terms = ElboTerms.concat(parts) if parts else ElboTerms(*(np.zeros(0) for _ in range(3)))
    return PerImage(mine.numpy(), terms, seconds)


def summarize(terms: ElboTerms, level: float = 0.95) -> dict[str, float]:
    """Mean bits/dim with its t-interval (images i.i.d.), and the mean of each part of the bound."""
    mean, lo, hi = mean_interval(terms.total, level)
    return {
        "bpd": mean, "bpd_lo": lo, "bpd_hi": hi, "bpd_sd": float(terms.total.std(ddof=1)),
        "L_T": float(terms.prior.mean()), "L_0": float(terms.decoder.mean()), "L_middle": float(terms.middle.mean()),
    }
