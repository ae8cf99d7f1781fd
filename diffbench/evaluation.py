"""Sample sets → metric records: Inception, reference-classifier and CLIP metrics, each with its 95%
interval, and the provenance that travels with every number.

* Inception features: FID, KID, precision/recall, IS (when the weights have logits) against the cached
  reference features (:mod:`diffbench.metrics.suite`).
* The dataset's reference classifier (``stages/classifier.py``): the same suite on its penultimate
  features and logits (``classifier_fid``, ``classifier_inception_score_mean``, ...) and, for samples that
  asked for a class, ``class_accuracy`` (Wilson interval). Reported only if the classifier met its
  minimum test accuracy; otherwise every classifier number is None and the reason says why.
* CLIP score (:mod:`diffbench.metrics.clip_score`), only after the model passed its zero-shot check on
  real reference images, and only for samples that asked for a class.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffbench import layout
from diffbench.classifier_features import ClassifierFeatures, class_accuracy, load_classifier
from diffbench.cli import read_json
from diffbench.config import Params
from diffbench.data import load_split, take_subset
from diffbench.distributed import device_name
from diffbench.errors import DiffbenchError
from diffbench.hashing import sha256_file
from diffbench.metrics import clip_score
from diffbench.metrics.inception import (
    InceptionFeatures,
    load_inception,
    resolve_weights,
)
from diffbench.metrics.reference import backend_info, check_compatible, load_reference
from diffbench.metrics.suite import SuiteConfig, fidelity_metrics

NO_CLASS_REQUESTED = "unguided samples request no class"


@dataclass
class ClassifierScoring:
    """A dataset's reference classifier with its cached reference features, or why it is not used."""

    extractor: ClassifierFeatures | None
    reference: dict | None
    record: dict
    unavailable: str | None

    @classmethod
    def load(cls, dataset: str, device: str) -> "ClassifierScoring":
        """From the classifier stage's outputs; below its minimum accuracy it scores nothing."""
        directory = layout.classifier_dir(dataset)
        record = read_json(directory / "classifier.json")
        reference, meta = load_reference(layout.classifier_reference_file(dataset))
        accuracy = record["result"]["test_accuracy"]
        if record.get("meets_min_accuracy") is False:
            reason = (f"reference classifier test accuracy {accuracy:.4f} < classifier.{dataset}.min_accuracy "
                      f"{record['min_accuracy']}")
            return cls(None, None, record, reason)
        extractor = load_classifier(directory / "classifier.pt", device)
        check_compatible(meta, extractor)
        return cls(extractor, reference, record, None)

    def provenance(self) -> dict:
        """Which classifier, and how good it is on the test split."""
        result = self.record["result"]
        return {"weights_sha256": None if self.extractor is None else self.extractor.weights_sha256,
                "test_accuracy": result["test_accuracy"], "test_n": result["test_n"],
                "min_accuracy": self.record.get("min_accuracy")}


@dataclass
class ClipScoring:
    """A CLIP model that passed (or failed) its zero-shot check, or the reason there is none."""

    scorer: clip_score.ClipScorer | None = None
    prompts: list[str] = field(default_factory=list)
    check: clip_score.ClipCheck | None = None
    batch_size: int = 1
    unavailable: str | None = None
    level: float = 0.95

    @classmethod
    def build(cls, settings: dict, dataset: str, reference: tuple[np.ndarray, np.ndarray, list[str]],
              device: str, level: float = 0.95) -> "ClipScoring":
        """Load the model of params ``metrics.clip``; zero-shot check it on the labelled reference images;
        scores get t-intervals at ``level``."""
        reason = clip_score.clip_unavailable_reason(
            settings["model"], settings["pretrained"], settings["weights"], settings["download"])
        if reason is not None:
            return cls(unavailable=reason)
        images, labels, class_names = reference
        prompts = clip_score.class_prompts(settings["prompts"][dataset], class_names)
        scorer = clip_score.load_clip(settings["model"], settings["pretrained"], settings["weights"], device)
        n = min(settings["check_n"], len(images))
        check = clip_score.clip_check(scorer, images[:n], labels[:n], prompts, settings["batch_size"],
                                      settings["check_alpha"])
        return cls(scorer, prompts, check, settings["batch_size"], level=level)

    def score(self, images: np.ndarray, labels: np.ndarray | None) -> dict:
        """CLIP entries of a metrics record (numbers None with a reason where there is no score)."""
        if self.scorer is None or labels is None:
            return clip_score.clip_unavailable_metrics(self.unavailable or NO_CLASS_REQUESTED)
        return clip_score.clip_metrics(self.scorer, images, labels, self.prompts, self.batch_size, self.check,
                                       self.level)

    def provenance(self) -> dict | None:
        return None if self.scorer is None else self.scorer.info


class PartClock:
    """Times the parts of a scoring pass (synchronising the device, so GPU work lands in its own part)."""

    def __init__(self, device) -> None:
        self.device = torch.device(device)
        self.seconds: dict[str, float] = {}

    def __call__(self, part: str, work):
        start = time.perf_counter()
        result = work()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[part] = time.perf_counter() - start
        return result


def prefixed(values: dict, prefix: str) -> dict:
    """``values`` with every key prefixed (the classifier-feature metrics share the suite's names)."""
    return {f"{prefix}{key}": value for key, value in values.items()}


class Evaluator:
    """Scores uint8 image sets against one dataset's reference features."""

    def __init__(self, reference_path: str | Path, extractor: InceptionFeatures, metrics: dict, seed: int,
                 classifier: ClassifierScoring | None = None, clip: ClipScoring | None = None):
        self.reference_path = Path(reference_path)
        self.reference, self.reference_meta = load_reference(self.reference_path)
        self.extractor = extractor
        check_compatible(self.reference_meta, self.extractor)
        self.metrics, self.seed = metrics, seed
        self.suite = SuiteConfig.from_metrics(metrics, seed)
        self.classifier, self.clip = classifier, clip
        self.seconds: dict[str, float] = {}  # of the last extract() and score_features()

    def score(self, images: np.ndarray, labels: np.ndarray | None = None) -> dict:
        """Every metric of ``images``; ``labels`` are the classes the samples asked for (None: unguided).
        ``self.seconds`` then holds the wall time of each part (Inception and classifier features, their
        metrics, CLIP)."""
        return self.score_features(self.extract(images), images, labels)

    def extract(self, images: np.ndarray) -> dict:
        """The per-image features the metrics need: ``{"inception": ..., "classifier": ... or None}``, each
        ``{"pool": N×D, "logits": N×K or absent}``. Processes may each extract a share of the images
        (``diffbench.distributed.gather_interleaved`` puts the rows back in order)."""
        clock = PartClock(self.extractor.device)
        batch = self.metrics["batch_size"]
        inception = clock("inception features", lambda: self.extractor.extract(images, batch))
        scoring = self.classifier
        classifier = None
        if scoring is not None and scoring.unavailable is None:
            classifier = clock("classifier features", lambda: scoring.extractor.extract(images, batch))
        self.seconds = clock.seconds
        return {"inception": inception, "classifier": classifier}

    def score_features(self, features: dict, images: np.ndarray, labels: np.ndarray | None = None) -> dict:
        """Every metric from ``extract``'s features of ``images`` (CLIP reads the images themselves)."""
        clock = PartClock(self.extractor.device)
        out = clock("inception metrics",
                    lambda: fidelity_metrics(features["inception"], self.reference, self.suite, self.extractor.device))
        out.update(clock("classifier metrics", lambda: self._classifier_metrics(features["classifier"], labels)))
        clip = self.clip or ClipScoring(unavailable="no CLIP model configured")
        out.update(clock("clip", lambda: clip.score(images, labels)))
        self.seconds = self.seconds | clock.seconds
        return out

    def _classifier_metrics(self, features: dict | None, labels: np.ndarray | None) -> dict:
        scoring = self.classifier
        reason = "no reference classifier" if scoring is None else scoring.unavailable
        out = {"classifier_unavailable": reason, "class_accuracy": None, "class_accuracy_lo": None,
               "class_accuracy_hi": None, "class_accuracy_unavailable": reason}
        if reason is not None:
            return out
        out.update(prefixed(fidelity_metrics(features, scoring.reference, self.suite, scoring.extractor.device),
                            "classifier_"))
        if labels is None:
            out["class_accuracy_unavailable"] = NO_CLASS_REQUESTED
        else:
            out["class_accuracy"], out["class_accuracy_lo"], out["class_accuracy_hi"] = class_accuracy(
                features["logits"], labels, self.suite.level)
            out["class_accuracy_unavailable"] = None
        return out

    def provenance(self, n_samples: int) -> dict:
        """What produced the numbers: backend, extractor weights, reference set, sample count, classifier, CLIP."""
        meta = self.reference_meta
        return backend_info() | {
            "weights_sha256": self.extractor.weights_sha256,
            "n_samples": int(n_samples),
            "reference": {
                "dataset": meta["dataset"], "split": meta["split"], "n": meta["n"],
                "split_sha256": meta["split_sha256"], "features_sha256": sha256_file(self.reference_path),
            },
            "metric_seed": self.seed,
            "metric_device": device_name(torch.device(self.extractor.device)),
            "classifier": None if self.classifier is None else self.classifier.provenance(),
            "clip": None if self.clip is None else self.clip.provenance(),
        }


def check_inputs(params: Params, dataset: str) -> None:
    """Fail in one line, before any long work, on a missing reference, classifier or weights file."""
    metrics = params.section("metrics")
    load_reference(layout.reference_file(dataset))
    resolve_weights(metrics.get("inception_weights"))
    directory = layout.classifier_dir(dataset)
    for path in (directory / "classifier.json", directory / "classifier.pt", layout.classifier_reference_file(dataset)):
        if not path.is_file():
            raise DiffbenchError(f"{path} does not exist: run the classifier stage of {dataset} first")
    clip = metrics["clip"]
    clip_score.clip_unavailable_reason(clip["model"], clip["pretrained"], clip["weights"], clip["download"])


def clip_check_set(split: tuple[np.ndarray, np.ndarray, list[str]], check_n: int, seed: int,
                   path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The labelled images of CLIP's zero-shot check: a seeded subset of the split, never its first check_n
    (image-folder splits are stored class by class, so a prefix would hold one class)."""
    images, labels, class_names = split
    images, labels = take_subset(images, labels, min(check_n, len(images)), seed, "metrics.clip.check_n", path)
    return images, labels, class_names


def build_evaluator(params: Params, dataset: str, device: str, extractor: InceptionFeatures | None = None) -> Evaluator:
    """The Evaluator of ``dataset`` as params configure it: Inception (``extractor`` if already loaded),
    the reference classifier and CLIP."""
    metrics = params.section("metrics")
    extractor = extractor or load_inception(metrics.get("inception_weights"), device)
    classifier = ClassifierScoring.load(dataset, device)
    path = layout.split_file(dataset, metrics["reference_split"])
    check_set = clip_check_set(load_split(path), metrics["clip"]["check_n"], params.seed, path)
    clip = ClipScoring.build(metrics["clip"], dataset, check_set, device, metrics["interval_level"])
    return Evaluator(layout.reference_file(dataset), extractor, metrics, params.seed, classifier, clip)
