"""Exponential moving average of model weights, with the warm-up of guided-diffusion and diffusers.

θ_ema ← d_n·θ_ema + (1 − d_n)·θ after the n-th update (n = 0, 1, …), with
d_n = min(decay, (1 + n)/(10 + n)). Without the warm-up a fraction decayⁿ of the average is still
the random initial network after n steps (0.9999^2760 ≈ 76% in a short run); with it the weight
left on the initial network is ∏ d_n ≤ 9!·n!/(n + 9)! (< 1e-14 after 200 updates), so a short
run's EMA holds no trace of the initialisation. The update count is part of the state, so a
resumed run continues the same sequence of d_n bit for bit.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

WARMUP_RULE = "min(decay, (1 + n)/(10 + n)) after n updates"


def warmup_decay(decay: float, updates: int) -> float:
    """The decay used for update number ``updates`` (0-based): min(decay, (1 + n)/(10 + n))."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class EMA:
    """An averaged copy of a model, updated by one ``torch._foreach_lerp_`` per step; buffers are copied."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 <= decay < 1:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current weights (no host synchronisation)."""
        weight = 1.0 - warmup_decay(self.decay, self.updates)
        torch._foreach_lerp_(list(self.model.parameters()), [p.detach() for p in model.parameters()], weight)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers()):
            ema_buffer.copy_(buffer)
        self.updates += 1

    def weights(self) -> dict:
        """The averaged weights as a state dict of the model (what sampling loads)."""
        return self.model.state_dict()

    def state_dict(self) -> dict:
        """Weights and update count: everything needed to continue the average exactly."""
        return {"weights": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
