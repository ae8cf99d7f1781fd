import numpy as np
import pytest
import torch

from diffbench import distributed
from diffbench.diffusion import NoiseSchedule
from diffbench.errors import DiffbenchError
from diffbench.training import TrainConfig, Trainer, draw_batch, learning_rate, run_signature
from tests.conftest import tiny_unet_config

CTX = distributed.Context(rank=0, world_size=1, device=torch.device("cpu"))


def config(**changes) -> TrainConfig:
    values = dict(steps=6, batch_size=4, lr=1e-3, warmup_steps=2, weight_decay=0.0, grad_clip=1.0, ema_decay=0.9,
                  p_uncond=0.1, hflip=True, checkpoint_every=3, log_every=2, compile=False, bf16=True,
                  channels_last=False)
    return TrainConfig(**(values | changes))


def data():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (20, 8, 8, 1), dtype=np.uint8))
    return images, torch.from_numpy(rng.integers(0, 10, 20))


def trainer(cfg: TrainConfig) -> Trainer:
    schedule = NoiseSchedule.named("linear", 100)
    unet = tiny_unet_config()
    return Trainer(unet, schedule, cfg, seed=3, ctx=CTX, signature=run_signature(unet, schedule, cfg, 3, "data"))


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_gives_bitwise_the_same_weights_as_an_uninterrupted_run(tmp_path):
    images, labels = data()
    logs = []
    straight = trainer(config())
    straight.fit(images, labels, tmp_path / "a.pt", lambda *row: logs.append(row))

    first = trainer(config())
    first.fit(images, labels, tmp_path / "b.pt", lambda *row: None, stop_at=3)
    second = trainer(config())
    assert second.load_state(tmp_path / "b.pt") and second.step == 3
    second.fit(images, labels, tmp_path / "b.pt", lambda *row: None)

    assert states_equal(straight.model.state_dict(), second.model.state_dict())
    assert states_equal(straight.ema.state_dict(), second.ema.state_dict())
    assert [row[0] for row in logs] == [2, 4, 6]


def test_checkpoint_from_other_settings_is_not_resumed(tmp_path):
    images, labels = data()
    trainer(config()).fit(images, labels, tmp_path / "c.pt", lambda *row: None, stop_at=3)
    other = trainer(config(lr=5e-4))
    assert not other.load_state(tmp_path / "c.pt") and other.step == 0
    longer = trainer(config(steps=12))  # more steps only: resume is allowed
    assert longer.load_state(tmp_path / "c.pt") and longer.step == 3


def test_corrupt_checkpoint_fails_naming_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DiffbenchError, match="checkpoint.pt: corrupt"):
        trainer(config()).load_state(path)


def test_label_dropout_rate_and_flip():
    images, labels = data()
    generator = torch.Generator().manual_seed(0)
    _, y = draw_batch(images, labels, 20_000, config(p_uncond=0.25), null_label=10, generator=generator)
    assert (y == 10).float().mean().item() == pytest.approx(0.25, abs=0.015)
    x, _ = draw_batch(images[:1], labels[:1], 400, config(p_uncond=0.0), 10, generator)
    flipped = torch.isclose(x, x[:, :, :, torch.arange(7, -1, -1)]).all(dim=(1, 2, 3))
    original = (x == x[0]).all(dim=(1, 2, 3))
    assert 0.4 < (~original).float().mean().item() < 0.6 or flipped.all()


def test_warmup_is_linear_then_constant():
    cfg = config(warmup_steps=4, lr=1.0)
    assert [learning_rate(s, cfg) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_training_lowers_the_loss_on_a_tiny_set(tmp_path):
    images, labels = data()
    images = images[:2]
    logs = []
    trainer(config(steps=60, log_every=20, hflip=False, lr=3e-3, checkpoint_every=60)).fit(
        images, labels[:2], tmp_path / "d.pt", lambda step, loss, lr, rate: logs.append(loss)
    )
    assert logs[-1] < logs[0]
