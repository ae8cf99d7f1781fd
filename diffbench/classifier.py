"""Training of the reference classifiers that score generated samples offline (class accuracy of
conditional samples, FID / IS on the classifier's own features): the network is ``diffbench.resnet9``,
its use on the metric path ``diffbench.classifier_features`` (which scoring imports without this module).

Training follows David Page's DAWNBench recipe: SGD with Nesterov momentum, a one-cycle learning rate (linear up over the first
fifth of the steps, linear down to 0), label smoothing, pad-and-crop plus (for natural images)
horizontal flips. The whole training split sits on the device as uint8; a batch and its augmentation
are one gather of pixel indices (reflect padding, per-image offsets, flips), drawn from one
``torch.Generator``, so a seed fixes every draw (bitwise on the CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from diffbench.classification_step import cross_entropy_step
from diffbench.classifier_config import ClassifierConfig
from diffbench.classifier_features import ClassifierFeatures
from diffbench.diffusion import to_model_space
from diffbench.distributed import device_name
from diffbench.errors import DiffbenchError
from diffbench.metrics.inception import check_images
from diffbench.progress import Progress
from diffbench.resnet9 import NetConfig, ResNet9
from diffbench.training import load_training_data

MOMENTUM = 0.9
WARMUP_FRACTION = 0.2  # Page: 5 of 24 epochs up, the rest down

# --------------------------------------------------------------------------- augmentation


def reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map indices in [−size+1, 2·size−2] into [0, size) as reflect padding does (edge not repeated)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def augment(
    images: torch.Tensor, index: torch.Tensor, padding: int, hflip: bool, generator: torch.Generator,
) -> torch.Tensor:
    """``images[index]`` (uint8 N×H×W×C) cropped at random offsets from the reflect-padded image, and
    flipped left-right with probability 1/2 if ``hflip``. One gather; the images are never copied whole."""
    _, height, width, _ = images.shape
    if padding >= min(height, width):
        raise DiffbenchError(f"crop_padding {padding} must be smaller than the image size {height}×{width}")
    n, device = len(index), images.device
    rows = torch.arange(height, device=device).expand(n, height)
    cols = torch.arange(width, device=device).expand(n, width)
    if padding:
        shift = torch.randint(0, 2 * padding + 1, (n, 2), device=device, generator=generator) - padding
        rows = reflect(rows + shift[:, :1], height)
        cols = reflect(cols + shift[:, 1:], width)
    if hflip:
        flip = torch.rand(n, 1, device=device, generator=generator) < 0.5
        cols = torch.where(flip, cols.flip(1), cols)
    return images[index[:, None, None], rows[:, :, None], cols[:, None, :]]


# --------------------------------------------------------------------------- training


def one_cycle_lr(step: int, total: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over the first WARMUP_FRACTION of ``total`` steps, then linear to 0."""
    warmup = max(1, round(WARMUP_FRACTION * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (total - step) / (total - warmup + 1)


def subset(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of ``n`` examples in their original order (n = 0 or ≥ len: all)."""
    if not n or n >= len(images):
        return images, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(images))[:n])
    return images[keep], labels[keep]


@dataclass
class ClassifierResult:
    """What training measured: per-epoch history, final test accuracy, throughput."""

    test_accuracy: float
    test_correct: int
    test_n: int
    train_n: int
    steps: int
    seconds: float
    images_per_second: float
    device: str
    history: list[dict]


class ClassifierTrainer:
    """Owns the model, optimiser and generator of one classifier training run."""

    def __init__(self, config: ClassifierConfig, net: NetConfig, seed: int, device: torch.device, total_steps: int):
        self.config, self.device, self.total_steps = config, device, total_steps
        self.cuda = device.type == "cuda"
        torch.manual_seed(seed)
        self.model = ResNet9(net).to(device)
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=MOMENTUM, nesterov=True, weight_decay=config.weight_decay
        )
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.step = 0

    def train_step(
        self, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on the augmented ``images[index]``; (loss, correct count) as device tensors."""
        config = self.config
        batch = to_model_space(augment(images, index, config.crop_padding, config.hflip, self.generator))
        if self.cuda:
            batch = batch.contiguous(memory_format=torch.channels_last)
        for group in self.optimizer.param_groups:
            group["lr"] = one_cycle_lr(self.step, self.total_steps, config.lr)
        result = cross_entropy_step(self.optimizer, lambda: self.forward(batch), labels[index],
                                    config.label_smoothing, config.bf16, self.device)
        self.step += 1
        return result

    def train_epoch(
        self, images: torch.Tensor, labels: torch.Tensor, steps: int, progress: Progress | None = None
    ) -> dict:
        """``steps`` batches of a fresh permutation (the remainder is dropped); the epoch's history row.
        Each batch ticks ``progress`` if given."""
        self.model.train()
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        order = torch.randperm(len(images), device=self.device, generator=self.generator)
        for index in order[: steps * self.config.batch_size].view(steps, -1):
            loss, hits = self.train_step(images, labels, index)
            loss_sum += loss
            correct += hits
            if progress is not None:
                progress.update()
        seen = steps * self.config.batch_size
        mean_loss, accuracy = float(loss_sum) / steps, int(correct) / seen  # synchronises
        seconds = time.perf_counter() - start
        rate = seen / seconds
        return {"train_loss": mean_loss, "train_accuracy": accuracy, "seconds": seconds, "images_per_second": rate}


def train_classifier(
    config: ClassifierConfig,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    seed: int,
    device: str | torch.device,
    log: Callable[[dict], None] | None = None,
) -> tuple[ResNet9, ClassifierResult]:
    """Train a ResNet-9 on ``train`` (uint8 N×H×W×C images, int labels); score it on ``test``.

    ``log`` receives each epoch's history row. Returns the model (eval mode) and the result.
    """
    device = torch.device(device)
    images, labels = subset(*train, config.train_n, seed)
    check_images(images)
    steps = len(images) // config.batch_size
    if steps < 1:
        raise DiffbenchError(f"batch_size {config.batch_size} exceeds the {len(images)} training images")
    _, height, width, channels = images.shape
    net = NetConfig(height, width, channels, num_classes, config.width)
    trainer = ClassifierTrainer(config, net, seed, device, config.epochs * steps)
    x, y = load_training_data(images, labels, device)
    history, start = [], time.perf_counter()
    with Progress("classifier training", config.epochs * steps, "batches") as progress:
        for epoch in range(1, config.epochs + 1):
            history.append({"epoch": epoch} | trainer.train_epoch(x, y, steps, progress))
            if log is not None:
                log(history[-1])
    seconds = time.perf_counter() - start
    extractor = ClassifierFeatures(trainer.model, None, device, config.bf16)
    test_logits = extractor.extract(test[0], config.batch_size, "classifier test set")["logits"]
    correct = int((test_logits.argmax(1) == np.asarray(test[1])).sum())
    result = ClassifierResult(
        test_accuracy=correct / len(test[0]), test_correct=correct, test_n=len(test[0]), train_n=len(images),
        steps=trainer.step, seconds=seconds, images_per_second=trainer.step * config.batch_size / seconds,
        device=device_name(device), history=history,
    )
    return trainer.model, result


