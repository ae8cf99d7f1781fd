"""Training of the noisy classifier on x_t of the forward process, and its accuracy as a function of t.

Each step draws images, optional flips, t uniform over all T steps and ε from one ``torch.Generator``,
forms x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε under the schedule of the model it will guide, and minimises
cross-entropy (with optional label smoothing) with AdamW; the learning rate warms up linearly over the
first WARMUP_FRACTION of the steps and then decays linearly to 0 (guided-diffusion anneals it to 0).
The whole training split sits on the device as uint8, so a seed fixes every draw (bitwise on the CPU).

Accuracy by t scores a seeded subset of the test split at evenly spaced t, with the same ε per image
at every t (common random numbers: differences between rows come from the noise level alone).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from diffbench.classification_step import cross_entropy_step
from diffbench.diffusion import NoiseSchedule, q_sample, to_model_space
from diffbench.distributed import device_name
from diffbench.errors import DiffbenchError
from diffbench.metrics.intervals import wilson_interval
from diffbench.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from diffbench.noisy_classifier_config import NoisyClassifierTraining
from diffbench.training import load_training_data

WARMUP_FRACTION = 0.05
def net_config(config: NoisyClassifierTraining, image_size: int, in_channels: int, num_classes: int,
               schedule: NoiseSchedule, where: str) -> NoisyClassifierConfig:
    """The network config of ``config`` for a dataset's image shape and classes under ``schedule`` (validated)."""
    net = NoisyClassifierConfig(
        image_size=image_size, in_channels=in_channels, num_classes=num_classes, schedule=schedule.name,
        timesteps=schedule.timesteps, channels=config.channels, channel_mult=config.channel_mult,
        num_res_blocks=config.num_res_blocks, attn_resolutions=config.attn_resolutions, dropout=config.dropout,
        norm_groups=config.norm_groups,
    )
    net.validate(where)
    return net


# --------------------------------------------------------------------------- training


def learning_rate(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first WARMUP_FRACTION of ``total`` steps, then linear decay to 0."""
    warmup = max(1, round(WARMUP_FRACTION * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (total - step) / (total - warmup + 1)


@dataclass
class NoisyTrainResult:
    """What training measured (timings belong in train.json, never in the classifier file)."""

    steps: int
    seconds: float
    images_per_second: float
    final_loss: float
    device: str
    history: list[dict]


class NoisyClassifierTrainer:
    """Owns the model, optimiser and generator of one noisy-classifier training run."""

    def __init__(self, config: NoisyClassifierTraining, net: NoisyClassifierConfig, schedule: NoiseSchedule,
                 seed: int, device: torch.device):
        self.config, self.schedule, self.device = config, schedule, device
        self.cuda = device.type == "cuda"
        torch.manual_seed(seed)
        self.model = NoisyClassifier(net).to(device)
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=self.cuda
        )
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.step = 0

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One AdamW step on a fresh batch of x_t; (loss, correct count) as device tensors (no sync)."""
        config, generator, batch = self.config, self.generator, self.config.batch_size
        index = torch.randint(0, images.shape[0], (batch,), device=self.device, generator=generator)
        x0 = to_model_space(images[index])
        if config.hflip:
            flip = torch.rand(batch, device=self.device, generator=generator) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(0, self.schedule.timesteps, (batch,), device=self.device, generator=generator)
        noise = torch.randn(x0.shape, device=self.device, generator=generator)
        x_t = q_sample(self.schedule, x0, t, noise)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, config.steps, config.lr)
        result = cross_entropy_step(self.optimizer, lambda: self.forward(x_t, t), labels[index],
                                    config.label_smoothing, config.bf16, self.device)
        self.step += 1
        return result


def train_noisy_classifier(
    config: NoisyClassifierTraining, net: NoisyClassifierConfig, schedule: NoiseSchedule,
    train: tuple[np.ndarray, np.ndarray], seed: int, device: str | torch.device,
    log: Callable[[dict], None] | None = None,
) -> tuple[NoisyClassifier, NoisyTrainResult]:
    """Train on x_t of ``train`` (uint8 N×H×W×C images, int labels); the model comes back in eval mode.

    ``log`` receives a history row (step, loss, train accuracy on x_t, lr, images/s) every ``log_every`` steps.
    """
    device = torch.device(device)
    images, labels = train
    if images.shape[1:] != (net.image_size, net.image_size, net.in_channels):
        raise DiffbenchError(
            f"noisy classifier takes {net.image_size}px×{net.in_channels} images, got {images.shape[1:]}"
        )
    trainer = NoisyClassifierTrainer(config, net, schedule, seed, device)
    x, y = load_training_data(images, labels, device)
    trainer.model.train()
    history: list[dict] = []
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    start = window = time.perf_counter()
    done = 0
    loss = torch.zeros(())
    while trainer.step < config.steps:
        loss, hits = trainer.train_step(x, y)
        loss_sum += loss
        correct += hits
        done += 1
        if trainer.step % config.log_every == 0 or trainer.step == config.steps:
            mean_loss, accuracy = float(loss_sum) / done, int(correct) / (done * config.batch_size)  # synchronises
            now = time.perf_counter()
            history.append({
                "step": trainer.step, "loss": mean_loss, "train_accuracy": accuracy,
                "lr": learning_rate(trainer.step - 1, config.steps, config.lr),
                "images_per_second": done * config.batch_size / (now - window),
            })
            if log is not None:
                log(history[-1])
            loss_sum.zero_()
            correct.zero_()
            window, done = now, 0
    seconds = time.perf_counter() - start
    result = NoisyTrainResult(
        steps=trainer.step, seconds=seconds, images_per_second=trainer.step * config.batch_size / seconds,
        final_loss=float(loss), device=device_name(device), history=history,
    )
    return trainer.model.eval(), result


# --------------------------------------------------------------------------- accuracy by t


def eval_timesteps(timesteps: int, count: int) -> list[int]:
    """``count`` evenly spaced timesteps from 0 to T−1 (0-based), rounded, distinct, increasing."""
    return sorted({int(round(v)) for v in np.linspace(0, timesteps - 1, count)})


@torch.no_grad()
def accuracy_by_t(
    model: NoisyClassifier, schedule: NoiseSchedule, test: tuple[np.ndarray, np.ndarray], timesteps: list[int],
    seed: int, batch_size: int, bf16: bool = False,
) -> list[dict]:
    """Rows {t, alpha_bar, accuracy, lo, hi, correct, n} of the classifier on x_t of ``test`` at each t;
    every t uses the same ε per image; lo–hi is the 95% Wilson interval."""
    device = next(model.parameters()).device
    images, labels = load_training_data(*test, device)
    model.eval()
    rows = []
    for t in timesteps:
        generator = torch.Generator(device=device).manual_seed(seed)  # the same ε at every t
        correct = 0
        for start in range(0, len(images), batch_size):
            x0 = to_model_space(images[start : start + batch_size])
            noise = torch.randn(x0.shape, device=device, generator=generator)
            t_batch = torch.full((len(x0),), t, device=device, dtype=torch.long)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
                logits = model(q_sample(schedule, x0, t_batch, noise), t_batch)
            correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
        accuracy, lo, hi = wilson_interval(correct, len(images))
        rows.append({"t": t, "alpha_bar": float(schedule.alpha_bar[t]), "accuracy": accuracy, "lo": lo, "hi": hi,
                     "correct": correct, "n": len(images)})
    return rows


def accuracy_tsv(rows: list[dict]) -> str:
    """The accuracy-by-t table as TSV (the DVC plot's data): t, alpha_bar, accuracy, lo, hi, n."""
    lines = ["t\talpha_bar\taccuracy\tlo\thi\tn"]
    for r in rows:
        lines.append(f"{r['t']}\t{r['alpha_bar']:.6f}\t{r['accuracy']:.4f}\t{r['lo']:.4f}\t{r['hi']:.4f}\t{r['n']}")
    return "\n".join(lines) + "\n"

