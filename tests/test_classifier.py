"""diffbench.classifier: the ResNet-9, on-device augmentation, training, features, class accuracy,
classifier files, params validation, the model card and the stage."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from diffbench import layout
from diffbench.classifier_config import ClassifierConfig, config_for
from diffbench.classifier import augment, one_cycle_lr, subset, train_classifier
from diffbench.classifier_features import ClassifierFeatures, class_accuracy, load_classifier, save_classifier
from diffbench.resnet9 import NetConfig, ResNet9
from diffbench.classifier_card import render_card
from diffbench.errors import DiffbenchError, ParamsError
from diffbench.hashing import sha256_file
from diffbench.metrics.reference import check_compatible, load_reference
from stages import classifier as stage

ROOT = Path(__file__).resolve().parents[1]
TINY = ClassifierConfig(
    width=8, epochs=3, batch_size=32, lr=0.2, weight_decay=5e-4, label_smoothing=0.1,
    crop_padding=2, hflip=True, train_n=0, bf16=True, compile=False,
)
PARAMS_ENTRY = {
    "width": 8, "epochs": 3, "batch_size": 32, "lr": 0.2, "weight_decay": 0.0005, "label_smoothing": 0.1,
    "crop_padding": 2, "hflip": True, "train_n": 0, "bf16": True, "compile": False, "min_accuracy": 0.99,
}


def stripes(n: int, seed: int, classes: int = 4, size: int = 16, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class is a bright horizontal band (rows 4k..4k+3): flip-invariant, separable."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.normal(60, 30, (n, size, size, channels))
    for i, label in enumerate(labels):
        images[i, 4 * label : 4 * label + 4] += 120
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


@pytest.fixture(scope="module")
def trained() -> tuple[ResNet9, object]:
    return train_classifier(TINY, stripes(512, 0), stripes(256, 1), 4, seed=0, device="cpu")


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------- network


def test_resnet9_shapes_and_parameter_count():
    model = ResNet9(NetConfig(28, 28, 1, 10, 8))
    features, logits = model.features_and_logits(torch.zeros(2, 1, 28, 28))
    assert features.shape == (2, 64) and logits.shape == (2, 10)
    w = 8  # 3×3 convs (no bias) + batch-norm scale/shift + bias-free head, counted by hand
    convs = 9 * (1 * w + w * 2 * w + 2 * (2 * w) ** 2 + 2 * w * 4 * w + 4 * w * 8 * w + 2 * (8 * w) ** 2)
    norms = 2 * (w + 2 * w + 2 * 2 * w + 4 * w + 8 * w + 2 * 8 * w)
    assert sum(p.numel() for p in model.parameters()) == convs + norms + 8 * w * 10 == 103800
    assert ResNet9(NetConfig(32, 32, 3, 10, 4))(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


# --------------------------------------------------------------------------- augmentation


def test_augment_without_crop_or_flip_is_a_plain_gather():
    images = torch.randint(0, 256, (10, 6, 5, 3), dtype=torch.uint8)
    index = torch.tensor([3, 1, 1, 9])
    out = augment(images, index, 0, False, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and torch.equal(out, images[index])


@pytest.mark.parametrize("hflip", [False, True])
def test_crops_are_shifts_of_the_reflect_padded_image(hflip):
    images = torch.randint(0, 256, (64, 8, 7, 3), dtype=torch.uint8)
    index, pad = torch.arange(64), 2
    out = augment(images, index, pad, hflip, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="reflect").permute(0, 2, 3, 1)
    flips, shifts = 0, set()
    for i in range(64):
        candidates = {
            (dy, dx, flip): padded[i, dy : dy + 8, dx : dx + 7].flip(1) if flip else padded[i, dy : dy + 8, dx : dx + 7]
            for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for flip in (False, True)
        }
        found = [key for key, crop in candidates.items() if torch.equal(crop, out[i].float())]
        assert found, f"image {i} is no crop of its padded image"
        flips += all(flip for _, _, flip in found)
        shifts.update((dy, dx) for dy, dx, _ in found)
    assert (flips > 0) == hflip  # flips only when allowed, and then some
    assert len(shifts) > 10  # offsets vary per image


def test_augment_rejects_padding_as_large_as_the_image():
    with pytest.raises(DiffbenchError, match="crop_padding 8 must be smaller"):
        augment(torch.zeros(2, 8, 8, 1, dtype=torch.uint8), torch.arange(2), 8, False, torch.Generator())


def test_one_cycle_lr_rises_then_falls_to_zero():
    rates = [one_cycle_lr(step, 100, 0.4) for step in range(100)]
    assert rates[19] == pytest.approx(0.4) and rates.index(max(rates)) == 19
    assert rates[0] == pytest.approx(0.02) and rates[-1] == pytest.approx(0.4 / 81)
    assert all(a < b for a, b in pairwise(rates[:20])) and all(a > b for a, b in pairwise(rates[19:]))


def test_subset_is_seeded_and_keeps_order():
    images, labels = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1), np.arange(100)
    a, b = subset(images, labels, 10, seed=3), subset(images, labels, 10, seed=3)
    assert np.array_equal(a[1], b[1]) and len(a[1]) == 10 and np.all(np.diff(a[1]) > 0)
    assert np.array_equal(a[0].ravel(), a[1]) and subset(images, labels, 0, 3)[1] is labels


# --------------------------------------------------------------------------- training


def test_training_learns_a_separable_dataset(trained):
    model, result = trained
    assert result.test_accuracy >= 0.95 and result.test_n == 256 and result.train_n == 512
    assert result.steps == 3 * (512 // 32) and len(result.history) == 3
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert all(row["images_per_second"] > 0 for row in result.history) and not model.training


def test_training_is_deterministic_for_a_seed():
    config = replace(TINY, epochs=1, train_n=128)
    data, test = stripes(256, 0), stripes(32, 1)
    runs = [train_classifier(config, data, test, 4, seed, "cpu") for seed in (5, 5, 6)]
    (a, ra), (b, rb), (c, _) = runs
    assert ra.history[0]["train_loss"] == rb.history[0]["train_loss"]
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.head.weight, c.head.weight)


def test_training_needs_a_full_batch():
    with pytest.raises(DiffbenchError, match="batch_size 32 exceeds the 20 training images"):
        train_classifier(TINY, stripes(20, 0), stripes(4, 1), 4, 0, "cpu")


# --------------------------------------------------------------------------- features and class accuracy


def test_extractor_shapes_dtypes_and_batching(trained):
    extractor = ClassifierFeatures(trained[0], "abc", "cpu")
    images = stripes(7, 2)[0]
    whole, chunked = extractor.extract(images, 64), extractor.extract(images, 3)
    assert whole["pool"].shape == (7, 64) and whole["logits"].shape == (7, 4)
    assert whole["pool"].dtype == np.float32 and whole["logits"].dtype == np.float32
    np.testing.assert_allclose(whole["logits"], chunked["logits"], rtol=1e-5, atol=1e-6)
    assert extractor.name == "diffbench-resnet9" and extractor.weights_sha256 == "abc"


@pytest.mark.parametrize(
    "images, needle",
    [
        (np.zeros((2, 16, 16, 1), np.uint8), "the classifier takes 16×16×3 images, got 16×16×1"),
        (np.zeros((2, 8, 8, 3), np.uint8), "got 8×8×3"),
        (np.zeros((2, 16, 16, 3), np.float32), "must be a non-empty uint8"),
    ],
)
def test_extractor_rejects_other_images(trained, images, needle):
    with pytest.raises(DiffbenchError) as error:
        ClassifierFeatures(trained[0], None, "cpu").extract(images, 4)
    assert needle in one_line(error)


def test_class_accuracy_counts_requested_labels():
    logits = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1, 2, 3, 0, 1]]
    requested = np.array([0, 1, 2, 3, 0, 1, 2, 3, 3, 3])
    accuracy, lo, hi = class_accuracy(logits, requested)
    assert accuracy == 0.8 and (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # Wilson, 8 of 10
    with pytest.raises(DiffbenchError, match="N×K logits and N labels"):
        class_accuracy(logits, requested[:3])


# --------------------------------------------------------------------------- files


def test_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "classifier.pt"
    save_classifier(path, trained[0], {"note": "test"})
    loaded = load_classifier(path, "cpu")
    assert loaded.weights_sha256 == sha256_file(path)
    images = stripes(5, 3)[0]
    original = ClassifierFeatures(trained[0], None, "cpu").extract(images, 8)
    again = loaded.extract(images, 8)
    for key in ("pool", "logits"):
        np.testing.assert_array_equal(original[key], again[key])


def test_bad_classifier_files_are_one_line(trained, tmp_path):
    corrupt, wrong = tmp_path / "corrupt.pt", tmp_path / "wrong.pt"
    corrupt.write_bytes(b"\x00garbage")
    torch.save({"format": "diffbench-model-1", "net": {}, "state_dict": {}}, wrong)
    cases = [(tmp_path / "none.pt", "checkpoint not found"), (corrupt, "corrupt or unreadable checkpoint"),
             (wrong, "classifier format 'diffbench-model-1'")]
    for path, needle in cases:
        with pytest.raises(DiffbenchError) as error:
            load_classifier(path, "cpu")
        assert str(path) in one_line(error) and needle in str(error.value)


# --------------------------------------------------------------------------- params


@pytest.mark.parametrize(
    "section, needle",
    [
        (None, "classifier: missing section"),
        ({"cifar10-jpeg": PARAMS_ENTRY}, "classifier.mnist: missing; configured: cifar10-jpeg"),
        ({"mnist": [1]}, "classifier.mnist: must be a mapping"),
        ({"mnist": PARAMS_ENTRY | {"width": 8.5}}, "classifier.mnist.width: must be int, got 8.5"),
        ({"mnist": PARAMS_ENTRY | {"width": 0}}, "classifier.mnist.width: must be >= 1"),
        ({"mnist": {k: v for k, v in PARAMS_ENTRY.items() if k != "epochs"}}, "classifier.mnist.epochs: missing"),
        ({"mnist": PARAMS_ENTRY | {"hflip": "yes"}}, "classifier.mnist.hflip: must be bool"),
        ({"mnist": PARAMS_ENTRY | {"lr": 0}}, "classifier.mnist.lr: must be > 0"),
        ({"mnist": PARAMS_ENTRY | {"label_smoothing": 1.0}}, "classifier.mnist.label_smoothing: must be in [0, 1)"),
        ({"mnist": PARAMS_ENTRY | {"train_n": 10}}, "classifier.mnist.train_n: must be 0 (all) or >= batch_size"),
        ({"mnist": PARAMS_ENTRY | {"min_accuracy": 99}}, "classifier.mnist.min_accuracy: must be null or a number in"),
        ({"mnist": PARAMS_ENTRY | {"dropout": 0.1}}, "classifier.mnist: unknown key(s) ['dropout']"),
    ],
)
def test_bad_params_name_the_field(section, needle):
    with pytest.raises(ParamsError) as error:
        config_for(section, "mnist")
    assert needle in one_line(error)


def test_good_params_give_a_config():
    config = config_for({"mnist": PARAMS_ENTRY | {"min_accuracy": None}}, "mnist")
    assert config.width == 8 and config.min_accuracy is None and config.hflip is True


# --------------------------------------------------------------------------- stage and card


def write_split(path: Path, images: np.ndarray, labels: np.ndarray, classes: int) -> None:
    """A split file in the data module's format (images, labels, class_names)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, images=images, labels=labels, class_names=np.array([f"c{k}" for k in range(classes)]))


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "profiles" / "quick" / "params.yaml").read_text())
    params["metrics"] |= {"reference_n": 24, "batch_size": 16}
    params["classifier"] = {name: PARAMS_ENTRY | {"epochs": 2} for name in params["datasets"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for split, n, seed in (("train", 256, 0), ("test", 48, 1)):
        write_split(tmp_path / layout.split_file("mnist", split), *stripes(n, seed, channels=1), 4)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_stage_writes_classifier_card_and_reference_features(stage_dir, capsys):
    stage.main(["mnist"])
    out = layout.classifier_dir("mnist")
    record = yaml.safe_load((out / "classifier.json").read_text())
    result = record["result"]
    assert result["test_n"] == 48 and record["meets_min_accuracy"] == (result["test_accuracy"] >= 0.99)
    assert record["weights_sha256"] == sha256_file(out / "classifier.pt") and record["data"]["train"]["n"] == 256
    card = (out / "model_card.md").read_text()
    assert f"{record['result']['test_accuracy']:.2%}" in card and "minimum 99.00%" in card
    features, meta = load_reference(layout.classifier_reference_file("mnist"))
    assert features["pool"].shape == (24, 64) and features["logits"].shape == (24, 4)
    assert meta["split"] == "test" and meta["n"] == 24
    check_compatible(meta, load_classifier(out / "classifier.pt", "cpu"))
    assert "classifier test accuracy" in capsys.readouterr().out
    assert "no minimum set in params" in render_card(record | {"min_accuracy": None, "meets_min_accuracy": None})


def test_stage_without_classifier_params_is_one_line(stage_dir, capsys):
    params = yaml.safe_load((stage_dir / "params.yaml").read_text())
    del params["classifier"]
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_info:
        stage.main(["mnist"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: classifier: missing section") and "\n" not in err

