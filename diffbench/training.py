"""Training loop of the reference DDPMs: AdamW, linear lr warm-up, gradient clipping, EMA with
warm-up, label dropout, bf16 autocast on CUDA, optional torch.compile, checkpoints with exact
resume, a NaN/inf guard, DDP under torchrun.

The whole training split lives on the device as uint8; every random draw of a step (indices,
flips, label dropout, t, ε) comes from one generator whose state is checkpointed, so stopping and
resuming gives the same weights, EMA and loss curve as an uninterrupted run (bitwise on the CPU;
on a GPU only as far as its kernels are deterministic). A step never waits for the device: loss
and gradient norm stay there until the next log or checkpoint step (``loss_window``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from diffbench import distributed
from diffbench.checkpoint import MODEL_FORMAT, load_file, save_atomic
from diffbench.config import TRAINING_OPTIONAL
from diffbench.diffusion import NoiseSchedule, simple_loss, to_model_space  # noqa: F401  (re-exported)
from diffbench.ema import EMA, WARMUP_RULE
from diffbench.errors import DiffbenchError
from diffbench.flops import forward_flops
from diffbench.loss_window import LossRow, LossWindow
from diffbench.run_clock import Segment, SegmentClock
from diffbench.unet import UNet, UNetConfig

if TYPE_CHECKING:
    from diffbench.config import Params

RESUME_FORMAT = "diffbench-train-state-2"


class TrainingDiverged(DiffbenchError):
    """A non-finite loss or gradient norm: training stops before saving it."""


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
    cudagraphs: bool  # with compile, on one CUDA device: the compiled graphs replayed as CUDA graphs
    force_layout: bool  # with compile, on CUDA: inductor's channels-last layout optimisation, always
    bf16: bool
    channels_last: bool

    def signature(self) -> dict:
        """The fields that change what is learned (not how long or how it is logged)."""
        skip = {"steps", "checkpoint_every", "log_every", "compile", "cudagraphs", "force_layout"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


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
        "unet": unet.signature(), "schedule": schedule.name, "timesteps": schedule.timesteps,
        "train": config.signature(), "seed": seed, "data": data_sha256, "ema": WARMUP_RULE,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def configure_backends(device: torch.device) -> None:
    """Backend settings of every training run (the benchmark inherits them through ``Trainer``).

    cudnn.benchmark picks the fastest convolution algorithms for the run's fixed shapes; results
    differ from the default algorithms only in rounding. TF32 stays off: it would change fp32 runs.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def compile_options(config: TrainConfig, ctx: distributed.Context) -> dict[str, bool] | None:
    """Inductor options of the training step's torch.compile (None: the defaults), on CUDA only:

    - ``cudagraphs`` on one device: the compiled graphs replayed as CUDA graphs (what ``mode="reduce-overhead"``
      sets), one launch per graph instead of one per kernel; not under DDP, whose gradient hooks a captured
      graph would not run;
    - ``force_layout``: inductor's layout optimisation (convolutions and the kernels around them in channels-last,
      laid out by inductor) even though its heuristic declines it for a graph with a convolution of ≥ 2× more
      input than output channels, as the U-Net decoder's on the concatenated skips; without it cuDNN converts
      NCHW↔NHWC around every convolution of the step."""
    if ctx.device.type != "cuda":
        return None
    options = {"triton.cudagraphs": config.cudagraphs and ctx.world_size == 1,
               "force_layout_optimization": config.force_layout}
    return {name: True for name, on in options.items() if on} or None


class Trainer:
    """Owns the model, EMA, optimiser, RNG, loss history and timings of one training run."""

    def __init__(
        self, unet: UNetConfig, schedule: NoiseSchedule, config: TrainConfig, seed: int,
        ctx: distributed.Context, signature: str, model: nn.Module | None = None,
    ):
        """``model`` replaces the U-Net of ``unet`` (the benchmark times diffusers' network this way);
        it takes (x, t, y) and has a ``null_label``."""
        self.unet_config, self.schedule, self.config, self.ctx = unet, schedule, config, ctx
        self.signature = signature
        configure_backends(ctx.device)
        torch.manual_seed(seed)
        self.model = (model if model is not None else UNet(unet)).to(ctx.device)
        self.use_bf16 = config.bf16 and ctx.device.type == "cuda"
        if config.channels_last and ctx.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = EMA(self.model, config.ema_decay)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
            fused=ctx.device.type == "cuda",
        )
        self.generator = torch.Generator(device=ctx.device)
        self.generator.manual_seed(seed * 1_000_003)  # the same stream on every process: see train_step
        self.step = 0
        self.history: list[LossRow] = []
        self.window = LossWindow(config.log_every, ctx.device)
        self.segments: list[Segment] = []
        self.saved_step: int | None = None  # step of the last checkpoint written or loaded
        forward = self.model
        if ctx.world_size > 1:
            forward = DistributedDataParallel(self.model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
        self.forward = torch.compile(forward, options=compile_options(config, ctx)) if config.compile else forward

    # ---- state -------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to continue bit for bit, loss curve and timings included."""
        state = {
            "format": RESUME_FORMAT, "signature": self.signature, "step": self.step,
            "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
            "cpu_rng": torch.get_rng_state(), "history": [asdict(row) for row in self.history],
            "window": self.window.state(), "segments": [asdict(s) for s in self.segments],
        }
        if self.ctx.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.ctx.device)
        return state

    def load_state(self, path: Path) -> bool:
        """Resume from ``path`` if it exists and matches this run; returns whether it resumed."""
        if not path.exists():
            return False
        state = load_file(path, ("format", "signature", "step"))
        if state["format"] != RESUME_FORMAT:
            print(f"{path}: checkpoint format {state['format']!r}, expected {RESUME_FORMAT!r}; starting over")
            return False
        if state["signature"] != self.signature:
            print(f"{path}: made with other settings (signature {state['signature']} != {self.signature}); starting over")
            return False
        if state["step"] > self.config.steps:
            print(f"{path}: at step {state['step']}, past training.steps {self.config.steps}; starting over")
            return False
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["cpu_rng"])
        if "cuda_rng" in state and self.ctx.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.ctx.device)
        self.history = [LossRow(**row) for row in state["history"]]
        self.window = LossWindow(max(self.config.log_every, len(state["window"]["rows"]) + 1), self.ctx.device)
        self.window.load(state["window"])
        self.segments = [Segment(**segment) for segment in state["segments"]]
        self.step = self.saved_step = state["step"]
        return True

    def model_file(self, provenance: dict) -> dict:
        """The artefact sampling uses: EMA weights, architecture, schedule, provenance (no timings)."""
        return {
            "format": MODEL_FORMAT, "unet": asdict(self.unet_config), "schedule": self.schedule.name,
            "timesteps": self.schedule.timesteps, "ema": self.ema.weights(), "step": self.step,
            "provenance": provenance,
        }

    # ---- the loop ----------------------------------------------------------------------
    def train_step(self, images: torch.Tensor, labels: torch.Tensor, local_batch: int) -> torch.Tensor:
        """One optimiser step and EMA update; loss and gradient norm stay on the device (no sync).

        Every process draws the whole global batch (images, flips, label dropout, t, ε) from the same
        generator and trains on its own rows, so N processes take the one-process step (up to float
        reassociation of the gradient mean; dropout masks come from each process's own RNG)."""
        world = self.ctx.world_size
        x0, y = draw_batch(images, labels, local_batch * world, self.config, self.model.null_label, self.generator)
        part = slice(self.ctx.rank * local_batch, (self.ctx.rank + 1) * local_batch) if world > 1 else None
        if self.config.channels_last and x0.is_cuda:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.config)
        with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            loss = simple_loss(self.forward, self.schedule, x0, y, generator=self.generator, part=part)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        self.optimizer.step()
        self.ema.update(self.model)
        self.window.record(loss, grad_norm)
        self.step += 1
        return loss.detach()

    def fit(
        self, images: torch.Tensor, labels: torch.Tensor, checkpoint: Path | None,
        log: Callable[[LossRow, float], None], stop_at: int | None = None,
    ) -> Segment:
        """Train until ``config.steps`` (or ``stop_at``); returns this call's segment of steps and time.

        At every log and checkpoint step (and the last) the pending losses and gradient norms are
        checked: a non-finite one raises ``TrainingDiverged`` naming its step, before anything is
        saved, so the checkpoint on disk stays the last good one. ``log(row, images_per_second)`` is
        called on the main process for each loss.tsv row; ``checkpoint=None`` saves nothing.
        """
        config, ctx = self.config, self.ctx
        if config.batch_size % ctx.world_size:
            raise ValueError(f"training.batch_size {config.batch_size} must divide over {ctx.world_size} processes")
        local_batch = config.batch_size // ctx.world_size
        target = min(config.steps, stop_at or config.steps)
        self.model.train()
        clock = SegmentClock(self.step, distributed.device_name(ctx.device), ctx.world_size)
        self.segments.append(clock.segment)
        while self.step < target:
            self.train_step(images, labels, local_batch)
            step = self.step
            log_now = step % config.log_every == 0 or step == config.steps or self.window.full
            save_now = checkpoint is not None and (step % config.checkpoint_every == 0 or step == target)
            if not (log_now or save_now or step == target):
                continue
            self._guard(checkpoint)
            steps_per_second = clock.mark(step)
            if log_now:
                row = self.window.close(learning_rate(step - 1, config))
                self.history.append(row)
                if ctx.is_main:
                    log(row, steps_per_second * config.batch_size)
            if save_now:
                if ctx.is_main:
                    save_atomic(self.state(), checkpoint)
                self.saved_step = step
                distributed.barrier()
        if clock.segment.end_step == clock.segment.start_step:
            self.segments.remove(clock.segment)
        return clock.segment

    def _guard(self, checkpoint: Path | None) -> None:
        """Stop on the first non-finite loss or gradient norm of the steps since the last check."""
        bad = self.window.check()
        if bad is None:
            return
        kept = "no checkpoint yet" if self.saved_step is None else f"the last good checkpoint is step {self.saved_step}"
        where = f" ({checkpoint})" if checkpoint is not None and self.saved_step is not None else ""
        raise TrainingDiverged(
            f"training diverged: non-finite {bad.what} at step {bad.step}; stopped at step {self.step} "
            f"without saving, {kept}{where}; lower training.lr or raise training.warmup_steps"
        )

    def recipe(self) -> dict:
        """What was learned how, without timings (model card, model.pt provenance)."""
        config = self.config
        return {
            "steps": self.step, "batch_size": config.batch_size, "images_seen": self.step * config.batch_size,
            "lr": config.lr, "warmup_steps": config.warmup_steps,
            "warmup_fraction": min(1.0, config.warmup_steps / config.steps),
            "ema_decay": config.ema_decay, "ema_warmup": WARMUP_RULE, "ema_length_steps": 1 / (1 - config.ema_decay),
            "precision": "bf16 autocast" if self.use_bf16 else "fp32", "processes": self.ctx.world_size,
            "forward_gflops_per_image": forward_flops(self.unet_config) / 1e9,
            "inductor_options": sorted(compile_options(config, self.ctx) or {}) if config.compile else None,
        }

    @property
    def final_loss(self) -> float | None:
        """Mean loss of the last logged interval."""
        return self.history[-1].loss if self.history else None


def make_trainer(
    params: "Params", dataset: str, schedule: str, image_shape: tuple[int, int, int], num_classes: int,
    ctx: distributed.Context, data_sha256: str, model: nn.Module | None = None, overrides: dict | None = None,
    architecture: dict | None = None,
) -> Trainer:
    """The pipeline's trainer for ``dataset`` (H×W×C images) under ``schedule``, from params.yaml.

    The train stage and ``benchmarks/throughput.py`` both build their trainer here; ``overrides``
    (training keys, e.g. compile) and ``architecture`` (e.g. group_norm_moments) are for the benchmark's rows only.
    """
    height, _, channels = image_shape
    entry = params.section("architectures")[dataset] | (architecture or {})
    unet = UNetConfig.from_params(entry, height, channels, num_classes)
    settings = {k: v for k, v in params.section("training")[dataset].items() if k not in TRAINING_OPTIONAL}
    config = TrainConfig(**(settings | (overrides or {})))
    noise = NoiseSchedule.named(schedule, params.timesteps)
    signature = run_signature(unet, noise, config, params.seed, data_sha256)
    return Trainer(unet, noise, config, params.seed, ctx, signature, model=model)


def load_training_data(images: np.ndarray, labels: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split on the device: uint8 images (N×H×W×C) and int64 labels."""
    return torch.from_numpy(images).to(device), torch.from_numpy(labels.astype(np.int64)).to(device)
