import numpy as np
import pytest
import torch

from diffbench.checkpoint import MODEL_FORMAT, save_atomic
from diffbench.errors import DiffbenchError
from diffbench.generation import generate, is_deterministic, load_model, to_uint8
from diffbench.samplers import REGISTRY, expected_nfe, make_settings


@pytest.fixture
def model_file(tmp_path, tiny_unet):
    from dataclasses import asdict

    path = tmp_path / "model.pt"
    save_atomic({"format": MODEL_FORMAT, "unet": asdict(tiny_unet.config), "schedule": "cosine", "timesteps": 50,
                 "ema": tiny_unet.state_dict(), "step": 0}, path)
    return path


def test_each_image_is_independent_of_batch_size_and_process_count(model_file):
    model = load_model(str(model_file), torch.device("cpu"))
    settings = make_settings("ddpm", {})
    seeds = list(range(7))
    whole = generate(model, "ddpm", settings, 50, seeds, 3.0, batch_size=7).images
    small = generate(model, "ddpm", settings, 50, seeds, 3.0, batch_size=2).images
    assert np.array_equal(whole, small)
    shards = [generate(model, "ddpm", settings, 50, seeds, 3.0, batch_size=3, rank=r, world_size=3) for r in range(3)]
    merged = np.concatenate([s.images for s in shards])[np.argsort(np.concatenate([s.seeds for s in shards]))]
    assert np.array_equal(whole, merged)
    assert whole.shape == (7, 8, 8, 1) and whole.dtype == np.uint8


def test_labels_are_balanced_by_seed(model_file):
    model = load_model(str(model_file), torch.device("cpu"))
    out = generate(model, "ddim", make_settings("ddim", {}), 5, list(range(20)), 1.0, batch_size=20)
    assert out.labels.tolist() == [s % 10 for s in range(20)]


def test_determinism_check_tells_ddim_from_ddpm(model_file):
    model = load_model(str(model_file), torch.device("cpu"))
    assert is_deterministic(model, "ddim", make_settings("ddim", {}), 10, [0, 1], 1.0, False)
    assert not is_deterministic(model, "ddim", make_settings("ddim", {"eta": 1.0}), 10, [0, 1], 1.0, False)
    assert not is_deterministic(model, "ddpm", make_settings("ddpm", {}), 50, [0, 1], 1.0, False)


def test_to_uint8_rounds_model_space():
    x = torch.tensor([-1.0, -0.999, 0.0, 1.0, 2.0]).reshape(1, 1, 1, 5)
    assert to_uint8(x).ravel().tolist() == [0, 0, 128, 255, 255]


def test_model_file_errors_name_the_file(tmp_path):
    with pytest.raises(DiffbenchError, match="model.pt: checkpoint not found"):
        load_model(str(tmp_path / "model.pt"), torch.device("cpu"))
    bad = tmp_path / "bad.pt"
    save_atomic({"format": MODEL_FORMAT}, bad)
    with pytest.raises(DiffbenchError, match="bad.pt: not a diffbench checkpoint"):
        load_model(str(bad), torch.device("cpu"))


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_sampler_keeps_images_independent_of_batch_size_and_counts_its_evaluations(model_file, kind):
    model = load_model(str(model_file), torch.device("cpu"))
    settings = make_settings(kind, {})
    steps = model.schedule.timesteps if kind == "ddpm" else 6
    whole = generate(model, kind, settings, steps, list(range(5)), 3.0, batch_size=5)
    split = generate(model, kind, settings, steps, list(range(5)), 3.0, batch_size=2)
    assert np.array_equal(whole.images, split.images)
    assert whole.nfe == split.nfe == expected_nfe(kind, settings, model.schedule, steps)


class Killed(Exception):
    """Stands in for SIGKILL during a batch."""


def test_a_killed_generation_resumes_from_its_finished_batches(model_file, tmp_path, monkeypatch):
    from diffbench import generation
    from diffbench.sample_chunks import ChunkStore

    model = load_model(str(model_file), torch.device("cpu"))
    settings = make_settings("ddpm", {})
    seeds = list(range(7))
    whole = generate(model, "ddpm", settings, 50, seeds, 3.0, batch_size=3).images
    store = ChunkStore(tmp_path / "partial", "key-a")
    real, calls, kill = generation.sample_batch, [], [3]

    def dies_on_the_third_batch(*args, **kwargs):
        calls.append(1)
        if kill and len(calls) == kill[0]:
            kill.clear()
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "sample_batch", dies_on_the_third_batch)
    with pytest.raises(Killed):
        generate(model, "ddpm", settings, 50, seeds, 3.0, batch_size=3, chunks=store)
    assert sorted(p.name for p in (tmp_path / "partial").iterdir()) == ["seeds-0-2.npz", "seeds-3-5.npz"]
    calls.clear()
    resumed = generate(model, "ddpm", settings, 50, seeds, 3.0, batch_size=3, chunks=store)
    assert len(calls) == 1 and resumed.resumed == 6  # only the last batch was sampled
    assert np.array_equal(resumed.images, whole) and resumed.nfe == 50
    (tmp_path / "partial" / "seeds-6-6.npz").write_bytes(b"damaged")
    calls.clear()
    assert np.array_equal(generate(model, "ddpm", settings, 50, seeds, 3.0, batch_size=3, chunks=store).images, whole)
    assert len(calls) == 1  # the damaged batch is sampled again
    calls.clear()
    other = generate(model, "ddpm", settings, 50, seeds, 3.0, batch_size=3, chunks=ChunkStore(tmp_path / "partial", "key-b"))
    assert len(calls) == 3 and other.resumed == 0  # batches of another signature are never reused
    store.clear()
    assert not (tmp_path / "partial").exists()


def toy_noisy_classifier(schedule) -> "NoisyClassifier":
    """A random noise-aware classifier for the tiny model's 8×8 images and 10 classes, under its schedule."""
    from diffbench.noisy_classifier import NoisyClassifier, NoisyClassifierConfig

    torch.manual_seed(1)
    config = NoisyClassifierConfig(image_size=8, in_channels=1, num_classes=10, schedule=schedule.name,
                                   timesteps=schedule.timesteps, channels=8, channel_mult=(1, 2), num_res_blocks=1,
                                   attn_resolutions=(4,), dropout=0.0, norm_groups=4)
    return NoisyClassifier(config).eval()


def test_classifier_guidance_steers_every_sampler_batch_independently(model_file):
    from diffbench.generation import ClassifierGuide

    model = load_model(str(model_file), torch.device("cpu"))
    guide = ClassifierGuide(toy_noisy_classifier(model.schedule), 50.0)
    settings = make_settings("ddim", {})
    seeds = list(range(5))
    whole = generate(model, "ddim", settings, 6, seeds, None, batch_size=5, guide=guide)
    split = generate(model, "ddim", settings, 6, seeds, None, batch_size=2, guide=guide)
    unguided = generate(model, "ddim", settings, 6, seeds, None, batch_size=5)
    assert np.array_equal(whole.images, split.images) and whole.nfe == unguided.nfe == 6
    assert not np.array_equal(whole.images, unguided.images)  # the classifier's gradient moved the samples
    assert is_deterministic(model, "ddim", settings, 6, [0, 1], None, False, guide)
    with pytest.raises(ValueError, match="classifier guidance steers the unguided model"):
        generate(model, "ddim", settings, 6, seeds, 1.0, batch_size=5, guide=guide)


def test_float_timesteps_leave_the_networks_output_unchanged(tiny_unet):
    from diffbench.generation import float_timesteps

    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t, labels = torch.tensor([0, 7, 31, 49]), torch.tensor([0, 1, 2, 3])
    seen = []

    def spy(x, t, labels):
        seen.append(t.dtype)
        return tiny_unet(x, t, labels)

    with torch.no_grad():
        assert torch.equal(float_timesteps(spy)(x, t, labels), tiny_unet(x, t, labels))
        assert torch.equal(float_timesteps(spy)(x, t.double(), labels), tiny_unet(x, t.double(), labels))
    assert seen == [torch.float32, torch.float32]  # one input dtype: one compiled graph for every sampler


def test_a_model_file_keeps_its_group_norm_setting_and_an_older_file_loads_native(model_file, tiny_unet):
    from dataclasses import asdict, replace

    from diffbench.checkpoint import load_model_file
    from diffbench.group_norm import GroupNorm

    def moments(model):
        return {m.moments for m in model.net.modules() if isinstance(m, GroupNorm)}

    state = load_model_file(str(model_file))
    older = state | {"unet": {k: v for k, v in state["unet"].items() if k != "group_norm_moments"}}
    save_atomic(older, model_file)  # a file written before the setting existed
    assert moments(load_model(str(model_file), torch.device("cpu"))) == {False}
    save_atomic(state | {"unet": asdict(replace(tiny_unet.config, group_norm_moments=True))}, model_file.parent / "m.pt")
    assert moments(load_model(str(model_file.parent / "m.pt"), torch.device("cpu"))) == {True}
