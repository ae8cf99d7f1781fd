"""diffbench.metrics.inception: weights resolution, image layout, and (slow) the real network.

The slow tests use the offline FID Inception weights named by $DIFFBENCH_INCEPTION_WEIGHTS (README "Offline use" builds
them with ../shared/tools/offline-inception.sh), and are skipped without them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch_fidelity.datasets import ImagesPathDataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.utils import get_featuresdict_from_dataset

from diffbench.errors import DiffbenchError
from diffbench.hashing import sha256_file
from diffbench.metrics import inception
from diffbench.metrics.inception import (
    WEIGHTS_ENV,
    InceptionFeatures,
    as_nchw_rgb,
    load_inception,
    resolve_weights,
)
from tests.offline import needs_offline, offline_path

OFFLINE_WEIGHTS = offline_path(WEIGHTS_ENV)  # as CI and README "Offline use" set it
needs_weights = needs_offline(WEIGHTS_ENV)


def images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random uint8 images."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# --------------------------------------------------------------------------- weights resolution


def test_explicit_path_wins_over_env(tmp_path, monkeypatch):
    explicit, env = tmp_path / "a.pth", tmp_path / "b.pth"
    explicit.write_bytes(b"a")
    env.write_bytes(b"b")
    monkeypatch.setenv(WEIGHTS_ENV, str(env))
    assert resolve_weights(str(explicit)) == str(explicit)
    assert resolve_weights(None) == str(env)
    monkeypatch.delenv(WEIGHTS_ENV)
    assert resolve_weights(None) is None


def test_missing_explicit_file_names_file_field_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    missing = tmp_path / "nope.pth"
    with pytest.raises(DiffbenchError) as err:
        resolve_weights(str(missing))
    message = str(err.value)
    assert str(missing) in message and "metrics.inception_weights" in message and WEIGHTS_ENV in message
    assert "\n" not in message


def test_missing_env_file_is_blamed_on_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "gone.pth"))
    with pytest.raises(DiffbenchError, match=rf"gone.pth \(from \${WEIGHTS_ENV}\)"):
        resolve_weights(None)


def test_unloadable_weights_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(DiffbenchError, match="bad.pth") as err:
        load_inception(str(bad), "cpu")
    assert "\n" not in str(err.value)


def test_downloaded_weights_are_found_in_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert inception.downloaded_weights_path() is None
    target = tmp_path / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    target.parent.mkdir()
    target.write_bytes(b"w")
    assert inception.downloaded_weights_path() == target


# --------------------------------------------------------------------------- image layout and batching


def test_grayscale_is_repeated_to_three_channels():
    gray = images((2, 5, 6, 1))
    out = as_nchw_rgb(gray)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 5, 6)
    for channel in range(3):
        assert torch.equal(out[:, channel], torch.from_numpy(gray[..., 0]))


def test_rgb_goes_channels_first_unchanged():
    rgb = images((2, 4, 7, 3))
    assert torch.equal(as_nchw_rgb(rgb), torch.from_numpy(rgb).permute(0, 3, 1, 2))


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 4, 4, 3), np.float32), np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4, 2), np.uint8),
            np.zeros((0, 4, 4, 3), np.uint8)],
)
def test_bad_images_are_one_line_errors(bad):
    with pytest.raises(DiffbenchError, match="N×H×W×C"):
        as_nchw_rgb(bad)


class StubInception(torch.nn.Module):
    """Stands in for torch-fidelity's network: records its inputs, returns features that encode them."""

    def __init__(self, finite_fc: bool):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        if not finite_fc:
            torch.nn.init.constant_(self.fc.weight, float("nan"))
        self.features_list = ["2048"]
        self.seen: list[tuple[torch.dtype, tuple[int, ...]]] = []

    convert_features_tuple_to_dict = FeatureExtractorBase.convert_features_tuple_to_dict

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.seen.append((x.dtype, tuple(x.shape)))
        first = x[:, :, 0, 0].float()  # N×3: the first pixel's channels
        make = {"2048": lambda: first[:, :1].repeat(1, 2048), "logits_unbiased": lambda: first[:, 2:].repeat(1, 1008)}
        return tuple(make[name]() for name in self.features_list)


@pytest.mark.parametrize("finite_fc", [False, True])
def test_extract_batches_uint8_nchw_in_order_and_has_logits_follows_fc(finite_fc):
    stub = StubInception(finite_fc)
    extractor = InceptionFeatures(stub, weights_sha256=None, device="cpu")
    gray = images((7, 5, 5, 1))
    out = extractor.extract(gray, batch_size=3)
    assert extractor.has_logits is finite_fc
    assert stub.seen == [(torch.uint8, (3, 3, 5, 5)), (torch.uint8, (3, 3, 5, 5)), (torch.uint8, (1, 3, 5, 5))]
    assert sorted(out) == (["logits", "pool"] if finite_fc else ["pool"])
    assert out["pool"].shape == (7, 2048) and np.array_equal(out["pool"][:, 0], gray[:, 0, 0, 0])
    if finite_fc:
        assert out["logits"].shape == (7, 1008) and np.array_equal(out["logits"][:, 0], gray[:, 0, 0, 0])


# --------------------------------------------------------------------------- the real network (slow)


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    """Run the network on one thread: on a 2-core machine shared with another busy process, torch's
    2 OpenMP threads spin at every barrier and a forward pass takes ~5 s whatever the batch size."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def offline() -> InceptionFeatures:
    return load_inception(str(OFFLINE_WEIGHTS), "cpu")


@pytest.mark.slow
@needs_weights
def test_offline_weights_give_finite_pool_features_and_no_logits(offline):
    assert offline.name == "inception-v3-compat"
    assert offline.has_logits is False
    assert offline.weights_sha256 == sha256_file(OFFLINE_WEIGHTS)
    out = offline.extract(images((4, 28, 28, 1), seed=1), batch_size=4)
    assert sorted(out) == ["pool"]
    pool = out["pool"]
    assert pool.shape == (4, 2048) and pool.dtype == np.float32 and np.isfinite(pool).all()
    assert (pool >= 0).all() and pool.std(0).max() > 0  # post-ReLU average pool, and image-dependent


@pytest.mark.slow
@needs_weights
@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (2, 32, 32, 3)])
def test_features_equal_torch_fidelity_reading_the_same_pngs(offline, tmp_path, shape):
    # torch-fidelity's own path: PNG -> PIL .convert("RGB") -> uint8 CHW tensor -> the network.
    batch = images(shape, seed=2)
    files = []
    for i, image in enumerate(batch):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image[..., 0] if shape[3] == 1 else image).save(files[-1])
    theirs = get_featuresdict_from_dataset(
        ImagesPathDataset(files), offline.model, batch_size=len(files), cuda=False, save_cpu_ram=True, verbose=False
    )
    assert np.array_equal(offline.extract(batch, batch_size=len(files))["pool"], theirs["2048"].numpy())


@pytest.mark.slow
@needs_weights
def test_weights_with_a_finite_fc_give_logits(tmp_path):
    state = torch.load(OFFLINE_WEIGHTS, weights_only=True)
    gen = torch.Generator().manual_seed(0)
    state["fc.weight"] = torch.randn(1008, 2048, generator=gen) * 0.01
    state["fc.bias"] = torch.randn(1008, generator=gen)
    path = tmp_path / "with-fc.pth"
    torch.save(state, path)
    extractor = load_inception(str(path), "cpu")
    out = extractor.extract(images((2, 32, 32, 3), seed=3), batch_size=2)
    assert extractor.has_logits is True and out["logits"].shape == (2, 1008)
    # torch-fidelity's IS layer "logits_unbiased" is pool @ fc.weight.T, without the bias
    expected = out["pool"] @ state["fc.weight"].numpy().T
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-4, atol=1e-5)
