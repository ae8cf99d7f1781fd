"""One optimiser step of a classifier on cross-entropy: what the reference classifier and the noisy classifier
of classifier guidance share (each draws its own batch and learning rate)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def cross_entropy_step(optimizer: torch.optim.Optimizer, logits_of: Callable[[], torch.Tensor],
                       target: torch.Tensor, label_smoothing: float, bf16: bool, device: torch.device
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (``logits_of()``, under bf16 autocast when ``bf16`` on CUDA), cross-entropy in fp32, backward and
    step; the detached loss and the count of correct predictions, both on the device (no host sync)."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
        logits = logits_of()
    loss = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), (logits.argmax(1) == target).sum()
