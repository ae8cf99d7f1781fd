"""diffbench.evaluation: which numbers a record gets, and which get a reason instead (fake extractors)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffbench import layout
from diffbench.evaluation import NO_CLASS_REQUESTED, ClassifierScoring, ClipScoring, Evaluator
from diffbench.metrics.reference import save_reference

METRICS = {"batch_size": 8, "kid_subset_size": 10, "kid_subsets": 3, "prc_k": 3, "interval_resamples": 4,
           "interval_level": 0.95}


class FakeExtractor:
    """Features = mean pixel value per channel plus noise-free statistics; logits favour class (mean > 100)."""

    device = "cpu"

    def __init__(self, name: str):
        self.name, self.weights_sha256 = name, "f" * 64

    def extract(self, images: np.ndarray, batch_size: int) -> dict:
        x = images.reshape(len(images), -1).astype(np.float64)
        pool = np.stack([x.mean(1), x.std(1), x[:, 0], x[:, -1]], axis=1)
        bright = (x.mean(1) > 100).astype(np.float64)
        return {"pool": pool, "logits": np.stack([1 - bright, bright], axis=1) * 5}


def toy_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = np.clip(rng.normal(40 + 150 * labels[:, None, None, None], 20, (n, 4, 4, 1)), 0, 255).astype(np.uint8)
    return images, labels


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref_images, _ = toy_images(30, 0)
    meta = lambda extractor: {"dataset": "toy", "split": "test", "n": 30, "split_sha256": "0" * 64,  # noqa: E731
                              "feature_extractor": extractor.name, "weights_sha256": extractor.weights_sha256}
    inception, classifier = FakeExtractor("inception"), FakeExtractor("classifier")
    save_reference(layout.reference_file("toy"), inception.extract(ref_images, 8), meta(inception))
    save_reference(layout.classifier_reference_file("toy"), classifier.extract(ref_images, 8), meta(classifier))
    return inception, classifier


def evaluator(workdir, classifier: ClassifierScoring | None) -> Evaluator:
    return Evaluator(layout.reference_file("toy"), workdir[0], METRICS, 0, classifier, ClipScoring(unavailable="no weights"))


def scoring(workdir) -> ClassifierScoring:
    from diffbench.metrics.reference import load_reference

    reference, _ = load_reference(layout.classifier_reference_file("toy"))
    return ClassifierScoring(workdir[1], reference, {"result": {"test_accuracy": 1.0, "test_n": 30}}, None)


def test_requested_classes_get_class_accuracy_and_classifier_metrics(workdir):
    images, labels = toy_images(20, 1)
    out = evaluator(workdir, scoring(workdir)).score(images, labels)
    assert out["class_accuracy"] == 1.0 and out["class_accuracy_lo"] < 1.0 == out["class_accuracy_hi"]
    assert out["classifier_fid_lo"] <= out["classifier_fid"] <= out["classifier_fid_hi"]
    assert 1.5 < out["classifier_inception_score_mean"] <= 2.0  # two confident classes: IS near K = 2
    wrong = evaluator(workdir, scoring(workdir)).score(images, 1 - labels)
    assert wrong["class_accuracy"] == 0.0
    assert out["clip_score"] is None and out["clip_score_unavailable"] == "no weights"
    assert out["fid_lo"] <= out["fid"] <= out["fid_hi"]


def test_unguided_samples_get_no_class_accuracy(workdir):
    images, _ = toy_images(20, 2)
    out = evaluator(workdir, scoring(workdir)).score(images, None)
    assert out["class_accuracy"] is None and out["class_accuracy_unavailable"] == NO_CLASS_REQUESTED
    assert out["classifier_fid"] is not None  # features need no requested class
    assert out["clip_score"] is None


def test_a_classifier_below_its_minimum_accuracy_reports_nothing(workdir):
    directory = layout.classifier_dir("toy")
    directory.mkdir(parents=True)
    (directory / "classifier.json").write_text(json.dumps(
        {"result": {"test_accuracy": 0.6, "test_n": 30}, "min_accuracy": 0.99, "meets_min_accuracy": False}))
    weak = ClassifierScoring.load("toy", "cpu")
    images, labels = toy_images(20, 3)
    out = evaluator(workdir, weak).score(images, labels)
    assert out["class_accuracy"] is None and not any(key.startswith("classifier_fid") for key in out)
    assert "test accuracy 0.6000 < classifier.toy.min_accuracy 0.99" in out["classifier_unavailable"]
    assert out["class_accuracy_unavailable"] == out["classifier_unavailable"]


def test_provenance_names_the_classifier(workdir):
    record = evaluator(workdir, scoring(workdir)).provenance(20)
    assert record["classifier"]["test_accuracy"] == 1.0 and record["classifier"]["weights_sha256"] == "f" * 64
    assert record["n_samples"] == 20 and record["clip"] is None


def test_clip_check_sees_every_class_of_a_split_stored_class_by_class(tmp_path):
    from diffbench.evaluation import clip_check_set

    labels = np.repeat(np.arange(10), 100)  # class by class, as image-folder splits are stored
    images = np.zeros((1000, 4, 4, 3), np.uint8)
    chosen, chosen_labels, names = clip_check_set((images, labels, list("abcdefghij")), 64, 0, tmp_path / "t.npz")
    assert len(chosen) == 64 and len(set(chosen_labels.tolist())) >= 8 and names == list("abcdefghij")
    assert clip_check_set((images, labels, []), 5000, 0, tmp_path / "t.npz")[0].shape[0] == 1000
