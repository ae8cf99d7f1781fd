"""Training loop of the reference DDPMs: AdamW, warm-up, gradient clipping, EMA, label dropout,
bf16 autocast on CUDA, optional torch.compile, checkpoints with exact resume, DDP under torchrun.

The whole training split lives on the device as uint8; every random draw of a step (indices,
flips, label dropout, t, ε) comes from one generator whose state is checkpointed, so stopping and
resuming gives the same weights as an uninterrupted run (bitwise on the CPU).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from diffbench import distributed
from diffbench.checkpoint import MODEL_FORMAT, load_file, save_atomic
from diffbench.diffusion import NoiseSchedule, simple_loss
from diffbench.ema import EMA
from diffbench.unet import UNet, UNetConfig

RESUME_FORMAT = "diffbench-train-state-1"


@dataclass(frozen=True)
class TrainConfig:
    """params.yaml ``training.<dataset>``."""

    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    ema_decay: float
    p_uncond: float
    hflip: bool
    checkpoint_every: int
    log_every: int
    compile: bool
    bf16: bool
    channels_last: bool

    def signature(self) -> dict:
        """The fields that change what is learned (not how long or how it is logged)."""
        skip = {"steps", "checkpoint_every", "log_every", "compile"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


def to_model_space(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×H×W×C → float N×C×H×W in [−1, 1] (x/127.5 − 1)."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def draw_batch(
    images: torch.Tensor, labels: torch.Tensor, batch: int, config: TrainConfig, null_label: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch in model space, with random flips and label dropout (p_uncond → ∅)."""
    device = images.device
    index = torch.randint(0, images.shape[0], (batch,), device=device, generator=generator)
    x0 = to_model_space(images[index])
    if config.hflip:
        flip = torch.rand(batch, device=device, generator=generator) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    y = labels[index]
    drop = torch.rand(batch, device=device, generator=generator) < config.p_uncond
    return x0, torch.where(drop, torch.full_like(y, null_label), y)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then constant (Ho et al.)."""
    if config.warmup_steps <= 0:
        return config.lr
    return config.lr * min(1.0, (step + 1) / config.warmup_steps)


def run_signature(unet: UNetConfig, schedule: NoiseSchedule, config: TrainConfig, seed: int, data_sha256: str) -> str:
    """Hash of everything a checkpoint must agree on before training resumes from it."""
    payload = {
        "unet": asdict(unet), "schedule": schedule.name, "timesteps": schedule.timesteps,
        "train": config.signature(), "seed": seed, "data": data_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    """What a finished (or resumed-and-finished) training run reports."""

    steps: int
    resumed_from: int
    seconds: float
    images_per_second: float
    final_loss: float
    world_size: int
    device: str


class Trainer:
    """Owns the model, EMA, optimiser and RNG of one training run."""

    def __init__(
        self, unet: UNetConfig, schedule: NoiseSchedule, config: TrainConfig, seed: int,
        ctx: distributed.Context, signature: str,
    ):
        self.unet_config, self.schedule, self.config, self.ctx = unet, schedule, config, ctx
        self.signature = signature
        torch.manual_seed(seed)
        self.model = UNet(unet).to(ctx.device)
        self.use_bf16 = config.bf16 and ctx.device.type == "cuda"
        if config.channels_last and ctx.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = EMA(self.model, config.ema_decay)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
            fused=ctx.device.type == "cuda",
        )
        self.generator = torch.Generator(device=ctx.device)
        self.generator.manual_seed(seed * 1_000_003 + ctx.rank)
        self.step = 0
        forward = self.model
        if ctx.world_size > 1:
            forward = DistributedDataParallel(self.model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
        self.forward = torch.compile(forward) if config.compile else forward

    # ---- state -------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to continue bit-for-bit."""
        state = {
            "format": RESUME_FORMAT, "signature": self.signature, "step": self.step,
            "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
            "cpu_rng": torch.get_rng_state(),
        }
        if self.ctx.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.ctx.device)
        return state

    def load_state(self, path: Path) -> bool:
        """Resume from ``path`` if it exists and matches this run; returns whether it resumed."""
        if not path.exists():
            return False
        state = load_file(path, ("format", "signature", "step", "model", "ema", "optimizer", "generator"))
        if state["signature"] != self.signature:
            print(f"{path}: made with other settings (signature {state['signature']} != {self.signature}); starting over")
            return False
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["cpu_rng"])
        if "cuda_rng" in state and self.ctx.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.ctx.device)
        self.step = state["step"]
        return True

    def model_file(self, provenance: dict) -> dict:
        """The artefact sampling uses: EMA weights, architecture, schedule, provenance."""
        return {
            "format": MODEL_FORMAT, "unet": asdict(self.unet_config), "schedule": self.schedule.name,
            "timesteps": self.schedule.timesteps, "ema": self.ema.state_dict(), "step": self.step,
            "provenance": provenance,
        }

    # ---- the loop ----------------------------------------------------------------------
    def train_step(self, images: torch.Tensor, labels: torch.Tensor, local_batch: int) -> torch.Tensor:
        """One optimiser step; returns the (device) loss without synchronising."""
        x0, y = draw_batch(images, labels, local_batch, self.config, self.model.null_label, self.generator)
        if self.config.channels_last and x0.is_cuda:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.config)
        with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            loss = simple_loss(self.forward, self.schedule, x0, y, generator=self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        self.step += 1
        return loss.detach()

    def fit(
        self, images: torch.Tensor, labels: torch.Tensor, checkpoint: Path,
        log: Callable[[int, float, float, float], None], stop_at: int | None = None,
    ) -> TrainResult:
        """Train until ``config.steps`` (or ``stop_at``), checkpointing and logging on the way."""
        config, ctx = self.config, self.ctx
        if config.batch_size % ctx.world_size:
            raise ValueError(f"training.batch_size {config.batch_size} must divide over {ctx.world_size} processes")
        local_batch = config.batch_size // ctx.world_size
        target = min(config.steps, stop_at or config.steps)
        resumed_from = self.step
        self.model.train()
        start = time.perf_counter()
        window_start, window_loss, window_steps, loss = start, torch.zeros((), device=ctx.device), 0, torch.zeros(())
        while self.step < target:
            loss = self.train_step(images, labels, local_batch)
            window_loss += loss
            window_steps += 1
            if self.step % config.log_every == 0 or self.step == target:
                mean_loss = float(distributed.all_reduce_mean(window_loss / window_steps))
                now = time.perf_counter()
                rate = window_steps * config.batch_size / (now - window_start)
                if ctx.is_main:
                    log(self.step, mean_loss, learning_rate(self.step - 1, config), rate)
                window_start, window_loss, window_steps = now, torch.zeros((), device=ctx.device), 0
            if self.step % config.checkpoint_every == 0 or self.step == target:
                if ctx.is_main:
                    save_atomic(self.state(), checkpoint)
                distributed.barrier()
        seconds = time.perf_counter() - start
        done = self.step - resumed_from
        return TrainResult(
            steps=self.step, resumed_from=resumed_from, seconds=seconds,
            images_per_second=done * config.batch_size / seconds if seconds > 0 and done else 0.0,
            final_loss=float(loss), world_size=ctx.world_size, device=distributed.device_name(ctx.device),
        )


def load_training_data(images: np.ndarray, labels: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split on the device: uint8 images (N×H×W×C) and int64 labels."""
    return torch.from_numpy(images).to(device), torch.from_numpy(labels.astype(np.int64)).to(device)
