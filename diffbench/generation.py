"""Generate images for a list of seeds: image i starts from x_T = noise(seed_i) and, if conditional,
asks for class seed_i mod K. Batches, processes and GPUs only partition the seeds, so each image is
the same whatever the batch size or GPU count (per-image noise, see ``diffbench.noise``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from diffbench import process_cache
from diffbench.checkpoint import load_model_file
from diffbench.diffusion import NoiseSchedule
from diffbench.classifier_guidance import ClassifierFn, classifier_guided_eps
from diffbench.guidance import guided_eps
from diffbench.noise import StepNoise, image_noise
from diffbench.progress import Progress
from diffbench.sample_chunks import ChunkStore
from diffbench.samplers import CountingEps, EpsFn, get_sampler
from diffbench.unet import UNet, UNetConfig

DETERMINISM_STREAM_OFFSET = 1 << 20


@dataclass
class LoadedModel:
    """A trained U-Net (EMA weights) with its schedule, ready to sample."""

    net: UNet
    schedule: NoiseSchedule
    file: dict
    forward: Callable[..., torch.Tensor] | None = None  # what sampling calls: the net, or its compiled graph

    def __post_init__(self) -> None:
        if self.forward is None:
            self.forward = self.net

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.net.config
        return (c.in_channels, c.image_size, c.image_size)

    @property
    def num_classes(self) -> int:
        return self.net.config.num_classes


def load_model(path: str, device: torch.device, compile_model: bool = False) -> LoadedModel:
    """Load a model file written by training (fails with one line on a bad file); optionally torch.compile it
    (static shapes: one graph per batch shape). Loaded once per process when the process cache is on."""
    return process_cache.cached(("model", process_cache.file_key(path), str(device), compile_model),
                                lambda: _load_model(path, device, compile_model))


def _load_model(path: str, device: torch.device, compile_model: bool) -> LoadedModel:
    state = load_model_file(path)
    config = dict(state["unet"])
    for key in ("channel_mult", "attn_resolutions"):
        config[key] = tuple(config[key])
    net = UNet(UNetConfig(**config))
    net.load_state_dict(state["ema"])
    return prepare_model(net, NoiseSchedule.named(state["schedule"], state["timesteps"]), device, compile_model, state)


def prepare_model(net: UNet, schedule: NoiseSchedule, device: torch.device, compile_model: bool,
                  file: dict | None = None) -> LoadedModel:
    """``net`` ready to sample as the generate stage samples: on ``device``, eval, frozen and, if asked,
    compiled (static shapes, float timesteps). benchmarks/throughput.py times sampling through it."""
    net.to(device).eval().requires_grad_(False)
    forward = float_timesteps(torch.compile(net, dynamic=False)) if compile_model else net
    return LoadedModel(net=net, schedule=schedule, file=file or {}, forward=forward)


def float_timesteps(forward: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``forward`` called with float32 timesteps: DDPM/DDIM's integer t and Heun's or DPM-Solver's float t then
    share one compiled graph (a new input dtype recompiles, ~20 s each). The U-Net's embedding converts t
    to float32 itself, so the outputs are the same."""

    def call(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return forward(x, t.float(), labels)

    return call


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Model space [−1, 1], N×C×H×W → uint8 N×H×W×C, rounding ((x + 1)·127.5)."""
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def class_labels(seeds: torch.Tensor, num_classes: int) -> torch.Tensor | None:
    """Balanced class per image: seed mod K (None for an unconditional model)."""
    return seeds % num_classes if num_classes else None


@dataclass(frozen=True)
class ClassifierGuide:
    """Classifier guidance: a noisy classifier p_φ(y | x_t, t) and its scale s > 0 (on the unguided model)."""

    classifier: ClassifierFn
    scale: float


def model_eps(model: LoadedModel, labels: torch.Tensor | None, guidance: float | None,
              guide: ClassifierGuide | None = None) -> EpsFn:
    """What a sampler calls: the model under classifier-free guidance ``guidance``, or, with ``guide``, the
    unguided model steered by the classifier's gradient."""
    if guide is None:
        return guided_eps(model.forward, labels, guidance, model.num_classes)
    if guidance is not None:
        raise ValueError("classifier guidance steers the unguided model: guidance must be None")
    return classifier_guided_eps(model.forward, guide.classifier, labels, guide.scale, model.num_classes,
                                 model.schedule)


def sample_batch(
    model: LoadedModel, kind: str, settings: Any, steps: int, seeds: torch.Tensor, guidance: float | None,
    bf16: bool = False, stream_offset: int = 0, guide: ClassifierGuide | None = None,
) -> tuple[torch.Tensor, int]:
    """Samples (model space) for one batch of seeds, and the network evaluations the sampler made."""
    device = next(model.net.parameters()).device
    seeds = seeds.to(device)
    x_T = image_noise(seeds, 0, model.image_shape)
    labels = class_labels(seeds, model.num_classes)
    eps_fn = CountingEps(model_eps(model, labels, guidance, guide))
    sampler = get_sampler(kind)

    noise = StepNoise(seeds, stream_offset, model.image_shape, last=steps)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
        x = sampler.sample(eps_fn, x_T, model.schedule, steps, noise, settings)
    return x, eps_fn.calls


@dataclass
class Generated:
    """Images (uint8 N×H×W×C, in seed order) with their seeds, labels, timing and network evaluations
    per image (``nfe``; None when this process had no seeds)."""

    images: np.ndarray
    seeds: np.ndarray
    labels: np.ndarray | None
    seconds: float
    nfe: int | None
    resumed: int = 0


def generate(
    model: LoadedModel, kind: str, settings: Any, steps: int, seeds: list[int], guidance: float | None,
    batch_size: int, bf16: bool = False, rank: int = 0, world_size: int = 1, label: str | None = None,
    chunks: ChunkStore | None = None, guide: ClassifierGuide | None = None,
) -> Generated:
    """This process's share (seeds[rank::world_size]) of the images, batched; rank 0 reports its
    progress under ``label`` (default ``generate <kind> <steps> steps``). With ``chunks``, batches already
    stored there are loaded instead of sampled and every new batch is stored (resume after a kill);
    ``seconds`` then times the sampled batches only and ``resumed`` counts the loaded images."""
    mine = torch.tensor(seeds[rank::world_size], dtype=torch.int64)
    device = next(model.net.parameters()).device
    outputs: list[np.ndarray] = []
    counts: set[int] = set()
    resumed = 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with Progress(label or f"generate {kind} {steps} steps", len(mine), "images", enabled=rank == 0) as progress:
        for chunk in mine.split(batch_size):
            stored = chunks.load(chunk.numpy()) if chunks is not None else None
            if stored is not None:
                images, calls = stored
                resumed += len(chunk)
            else:
                x, calls = sample_batch(model, kind, settings, steps, chunk, guidance, bf16, guide=guide)
                images = to_uint8(x)
                if chunks is not None:
                    chunks.save(chunk.numpy(), images, calls)
            outputs.append(images)
            counts.add(calls)
            progress.update(len(chunk))
    seconds = time.perf_counter() - start
    if len(counts) > 1:
        raise RuntimeError(f"sampler {kind!r} made a different number of network evaluations per batch: {counts}")
    labels = class_labels(mine, model.num_classes)
    images = np.concatenate(outputs) if outputs else np.zeros((0,) + model.image_shape[1:] + model.image_shape[:1], np.uint8)
    nfe = counts.pop() if counts else None
    return Generated(images, mine.numpy(), None if labels is None else labels.numpy(), seconds, nfe, resumed)


def is_deterministic(
    model: LoadedModel, kind: str, settings: Any, steps: int, seeds: list[int], guidance: float | None, bf16: bool,
    guide: ClassifierGuide | None = None,
) -> bool:
    """Sample the same x_T twice with different injected noise; identical outputs ⇔ deterministic. Runs the
    eager network: the check is about the sampler, and its small batch would cost a compiled model a recompile."""
    model = replace(model, forward=model.net)
    seed_tensor = torch.tensor(seeds, dtype=torch.int64)
    first, _ = sample_batch(model, kind, settings, steps, seed_tensor, guidance, bf16, guide=guide)
    second, _ = sample_batch(model, kind, settings, steps, seed_tensor, guidance, bf16, DETERMINISM_STREAM_OFFSET,
                             guide)
    return bool(torch.equal(first, second))
