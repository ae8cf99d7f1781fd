"""Two processes under a real gloo process group (what torchrun sets up on CPU machines): a sample set gathered
over ranks equals the one-process sample set image for image (per-image seeds), and the DDP reductions agree."""

from __future__ import annotations

import socket
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from diffbench import distributed
from diffbench.checkpoint import MODEL_FORMAT, save_atomic
from diffbench.generation import generate, load_model
from diffbench.samplers import make_settings
from stages.generate import gather_in_seed_order
from tests.conftest import tiny_unet_config
from tests.test_evaluation import workdir  # noqa: F401 (the fixture: reference features in a temporary folder)
from diffbench.unet import UNet

SEEDS = list(range(9))  # odd: ranks hold 5 and 4 images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_group(rank: int, world_size: int, port: int) -> distributed.Context:
    """This spawned process as rank ``rank`` of a gloo group on localhost, as torchrun would set it up."""
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    return distributed.setup("cpu")


def model_file(path: Path) -> Path:
    torch.manual_seed(0)
    net = UNet(tiny_unet_config())
    for p in net.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.02)
    save_atomic({"format": MODEL_FORMAT, "unet": asdict(net.config), "schedule": "cosine", "timesteps": 50,
                 "ema": net.state_dict(), "step": 0}, path)
    return path


def worker(rank: int, world_size: int, port: int, model: str, out: str) -> None:
    ctx = join_group(rank, world_size, port)
    try:
        loaded = load_model(model, ctx.device)
        settings = make_settings("ddpm", {})
        local = generate(loaded, "ddpm", settings, 50, SEEDS, 3.0, batch_size=2, rank=ctx.rank, world_size=ctx.world_size)
        images, seeds = gather_in_seed_order(local.images, local.seeds)
        mean = distributed.all_reduce_mean(torch.tensor([float(rank)]))
        if ctx.is_main:
            np.savez(out, images=images, seeds=seeds, mean=mean.numpy())
    finally:
        distributed.cleanup()


@pytest.mark.slow
def test_two_gloo_processes_make_the_one_process_sample_set(tmp_path):
    model = model_file(tmp_path / "model.pt")
    out = tmp_path / "two.npz"
    mp.spawn(worker, args=(2, free_port(), str(model), str(out)), nprocs=2, join=True)
    two = np.load(out)
    one = generate(load_model(str(model), torch.device("cpu")), "ddpm", make_settings("ddpm", {}), 50, SEEDS, 3.0,
                   batch_size=9)
    assert two["seeds"].tolist() == SEEDS
    assert np.array_equal(two["images"], one.images)  # bitwise: per-image seeds, no batch or rank dependence
    assert two["mean"].tolist() == [0.5]


def train_worker(rank: int, world_size: int, port: int, out: str) -> None:
    ctx = join_group(rank, world_size, port)
    try:
        trained = two_step_trainer(ctx)
        if ctx.is_main:
            torch.save(trained.model.state_dict(), out)
    finally:
        distributed.cleanup()


def two_step_trainer(ctx: distributed.Context):
    """4 steps at global batch 8 of a dropout-free tiny U-Net (dropout masks come from each process's RNG)."""
    from dataclasses import replace

    from tests.test_training import config, data
    from diffbench.diffusion import NoiseSchedule
    from diffbench.training import Trainer, run_signature

    images, labels = data()
    cfg = config(steps=4, batch_size=8, bf16=False, checkpoint_every=100)
    unet = replace(tiny_unet_config(), dropout=0.0)
    schedule = NoiseSchedule.named("linear", 100)
    trainer = Trainer(unet, schedule, cfg, seed=3, ctx=ctx, signature=run_signature(unet, schedule, cfg, 3, "d"))
    trainer.fit(images, labels, None, lambda *row: None)
    return trainer


@pytest.mark.slow
def test_two_gloo_processes_train_as_one_process_with_the_same_global_batch(tmp_path):
    out = tmp_path / "two.pt"
    mp.spawn(train_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    two = torch.load(out)
    torch.set_num_threads(1)
    one = two_step_trainer(distributed.Context(rank=0, world_size=1, device=torch.device("cpu"))).model.state_dict()
    # Same batches, t and noise on both sides; only the order of float sums differs (the all-reduce mean of two
    # half-batch gradients vs one full-batch gradient), so the weights agree to float32 rounding after Adam.
    worst = max(float((two[k] - one[k]).abs().max()) for k in one)
    changed = max(float((one[k] - v).abs().max()) for k, v in initial_weights().items())
    assert worst < 1e-5 < changed, (worst, changed)


def initial_weights() -> dict:
    from dataclasses import replace

    torch.manual_seed(3)
    return UNet(replace(tiny_unet_config(), dropout=0.0)).state_dict()


def score_worker(rank: int, world_size: int, port: int, folder: str, out: str) -> None:
    import json
    import os

    from stages.score import gather_features
    from tests.test_evaluation import FakeExtractor, evaluator, scoring, toy_images

    os.chdir(folder)
    ctx = join_group(rank, world_size, port)
    try:
        fakes = (FakeExtractor("inception"), FakeExtractor("classifier"))
        images, labels = toy_images(21, 1)
        scorer = evaluator(fakes, scoring(fakes))
        features = gather_features(scorer.extract(images[ctx.rank::ctx.world_size]))  # ranks hold 11 and 10
        if ctx.is_main:
            Path(out).write_text(json.dumps(scorer.score_features(features, images, labels)))
    finally:
        distributed.cleanup()


@pytest.mark.slow
def test_two_gloo_processes_score_as_one_process(tmp_path, workdir):
    import json

    from tests.test_evaluation import evaluator, scoring, toy_images

    out = tmp_path / "two.json"
    mp.spawn(score_worker, args=(2, free_port(), str(tmp_path), str(out)), nprocs=2, join=True)
    images, labels = toy_images(21, 1)
    one = evaluator(workdir, scoring(workdir)).score(images, labels)
    two = json.loads(out.read_text())
    assert two == json.loads(json.dumps(one))  # every metric and interval, exactly: features are per image
    assert two["class_accuracy"] == 1.0 and two["fid_lo"] <= two["fid"] <= two["fid_hi"]


def test_gathered_rows_come_back_in_item_order_without_a_process_group():
    rows = np.arange(12).reshape(6, 2)
    assert np.array_equal(distributed.gather_interleaved(rows), rows)
