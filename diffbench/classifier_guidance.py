"""Classifier guidance (Dhariwal & Nichol 2021) as a model-function wrapper every sampler uses unchanged.

ε̃(x_t, t, y) = ε_θ(x_t, t, ∅) − s · √(1 − ᾱ_t) · ∇_{x_t} log p_φ(y | x_t, t)

ε_θ is asked with the null label ∅ of the same model (the model a CFG run would use), p_φ is a
noise-aware classifier (``diffbench.noisy_classifier``) trained under the model's schedule and T.
s = 0 (or None) is unguided sampling and costs no classifier pass; s = 1 samples p(x | y) when ε_θ and
p_φ are exact. The gradient is taken in float32 whatever autocast the sampler runs under, with the
classifier in eval mode, so each image's ε̃ depends only on its own x_t, t and y (per-image seeds stay
independent of the batch size). It works under ``torch.no_grad`` and ``torch.inference_mode``.

Fractional t (samplers that move in σ and map σ back to t): the model and the classifier get the same
float t (their sinusoidal embeddings are continuous in t), and ᾱ_t is interpolated linearly in
log σ, σ = √((1 − ᾱ)/ᾱ), between the neighbouring integer steps: the inverse of k-diffusion's
``sigma_to_t``, exact at integers.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from diffbench.diffusion import NoiseSchedule
from diffbench.errors import DiffbenchError
from diffbench.guidance import check_scale
from diffbench.noisy_classifier import check_trained_for

ClassifierFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) → logits N×K


def alpha_bar_at(schedule: NoiseSchedule, t: torch.Tensor) -> torch.Tensor:
    """ᾱ_t (float32, shape of ``t``): the table at integer t; between steps, linear in log σ."""
    table = torch.as_tensor(schedule.alpha_bar, dtype=torch.float64, device=t.device)
    if not t.is_floating_point():
        return table[t].float()
    log_sigma = 0.5 * (torch.log1p(-table) - torch.log(table))
    t = t.double().clamp(0, schedule.timesteps - 1)
    low = t.floor().long()
    high = t.ceil().long()
    w = t - low
    log_s = (1 - w) * log_sigma[low] + w * log_sigma[high]
    return torch.sigmoid(-2 * log_s).float()  # 1 / (1 + σ²)


def log_prob_grad(classifier: ClassifierFn, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """∇_x log p(y | x, t) per image, float32, computed with autocast off and autograd on."""
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
        x_in = x.detach().clone().float().requires_grad_(True)  # a clone leaves inference mode's tensors
        logits = classifier(x_in, t.clone()).float()
        chosen = torch.log_softmax(logits, dim=-1).gather(1, labels.clone()[:, None]).sum()
        (grad,) = torch.autograd.grad(chosen, x_in)  # images are independent: the sum's gradient is per image
    return grad


class ClassifierGuidedEps:
    """The eps_fn(x, t) of classifier guidance; counts its model calls and classifier backward passes."""

    def __init__(
        self, model: nn.Module, classifier: ClassifierFn, labels: torch.Tensor | None, scale: float | None,
        null_label: int, schedule: NoiseSchedule,
    ):
        check_scale(scale, "classifier guidance scale")
        self.model, self.classifier, self.schedule = model, classifier, schedule
        self.null_label = null_label
        self.scale = 0.0 if scale is None or labels is None else float(scale)
        self.labels = labels
        if self.scale > 0:
            self._check_classifier(labels)
        self.model_calls = 0  # batched ε_θ evaluations (NFE per image)
        self.backward_passes = 0  # batched classifier forward + backward passes

    def _check_classifier(self, labels: torch.Tensor) -> None:
        config = getattr(self.classifier, "config", None)
        if config is not None and hasattr(config, "schedule"):
            check_trained_for(config, self.schedule, "classifier guidance")
        if labels.ndim != 1 or labels.is_floating_point():
            raise DiffbenchError(f"classifier guidance: labels must be a 1-d integer tensor, got {tuple(labels.shape)}")
        classes = getattr(config, "num_classes", None)
        if classes is not None and len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < classes:
            raise DiffbenchError(f"classifier guidance: labels must be in 0..{classes - 1} (the classifier's classes)")
        if isinstance(self.classifier, nn.Module):
            self.classifier.eval()

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        null = torch.full((x.shape[0],), self.null_label, device=x.device, dtype=torch.long)
        eps = self.model(x, t, null).float()
        self.model_calls += 1
        if self.scale == 0:
            return eps
        if self.labels.shape[0] != x.shape[0]:
            raise DiffbenchError(f"classifier guidance: {self.labels.shape[0]} labels for a batch of {x.shape[0]}")
        grad = log_prob_grad(self.classifier, x, t, self.labels)
        self.backward_passes += 1
        sigma = (1 - alpha_bar_at(self.schedule, t)).sqrt().reshape(-1, *([1] * (x.ndim - 1)))
        return eps - self.scale * sigma * grad


def classifier_guided_eps(
    model: nn.Module, classifier: ClassifierFn, labels: torch.Tensor | None, scale: float | None,
    null_label: int, schedule: NoiseSchedule,
) -> ClassifierGuidedEps:
    """ε̃(x, t) with labels, scale and schedule bound; output float32. ``scale`` is None or a finite
    number ≥ 0 (None, 0 or no labels: unguided, null label only); ``classifier(x, t)`` returns logits."""
    return ClassifierGuidedEps(model, classifier, labels, scale, null_label, schedule)

