"""CLIP score of class-conditional samples through open_clip, guarded against untrained weights.

Score of image i with requested class y_i: 100 · max(cos(E_image(x_i), E_text(prompt(y_i))), 0), the
formula of torchmetrics' ``CLIPScore`` docs and of Hessel et al. (there ×2.5); the number reported is
the mean over images. (torchmetrics' code clamps the *mean* at 0 instead of each image; with trained
weights cosines are positive and the two agree.) Prompts come from one template per dataset, e.g.
"a handwritten digit {class}".

Weights come from an explicit path (params field ``metrics.clip.weights``), else the
``DIFFBENCH_CLIP_WEIGHTS`` environment variable, else open_clip downloads the pretrained tag
(``metrics.clip.pretrained``) when ``metrics.clip.download`` allows it; with none of these the CLIP
score is reported as unavailable, with the reason (:func:`clip_unavailable_reason`).

Guard: a score is reported only if the same model, with the same class prompts, classifies real
labelled reference images zero-shot better than chance, significantly (one-sided binomial test against
1/K, p < ``alpha``; :func:`clip_check`). Random weights fail it (accuracy ≈ 1/K); real CLIP passes
(ViT-B-32: ~50% on MNIST, ~90% on CIFAR-10). A model that fails yields "unavailable" with the
accuracy, n and chance, never a number.

Preprocessing is open_clip's eval transform, done batched in torch on the device: grayscale repeated to
3 channels, shorter side resized to the model's input size (the model's interpolation, antialiased),
centre crop, values clamped and rounded to the 0..255 grid as PIL's uint8 output is, scaled to [0, 1]
and normalised with the model's mean/std. open_clip resizes with PIL, whose bicubic kernel (a = -0.5)
differs from torch's (a = -0.75): pixels differ slightly, embeddings by rounding-level amounts.
Inference is fp32 on every device.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

try:  # an optional dependency: pip install "diffbench[clip]"
    import open_clip
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    open_clip = None

from diffbench.errors import DiffbenchError, ParamsError
from diffbench.hashing import sha256_file
from diffbench.metrics.inception import as_nchw_rgb, check_images
from diffbench.metrics.intervals import mean_interval
from diffbench.metrics.weights import local_weights_file

WEIGHTS_ENV = "DIFFBENCH_CLIP_WEIGHTS"
NO_OPEN_CLIP = "open_clip is not installed (pip install 'diffbench[clip]')"
CLASS_FIELD = "{class}"
DEFAULT_ALPHA = 1e-6  # significance the zero-shot check must reach against chance
_SHOWN = 8  # tags listed in an error message
COMMON_MODELS = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50")


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _some(names: list[str]) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


# --------------------------------------------------------------------------- params


def resolve_clip_weights(path: str | None) -> str | None:
    """Weights file to use: ``path`` if given, else $DIFFBENCH_CLIP_WEIGHTS, else None (download the tag)."""
    return local_weights_file(
        path, "metrics.clip.weights", WEIGHTS_ENV, "CLIP",
        f"set metrics.clip.weights or ${WEIGHTS_ENV} to an open_clip state dict, or leave both unset to download "
        "metrics.clip.pretrained",
    )


def class_prompts(template: str, class_names: list[str]) -> list[str]:
    """One prompt per class: ``template`` with "{class}" replaced by the class name."""
    if not isinstance(template, str) or CLASS_FIELD not in template:
        raise ParamsError(f"metrics.clip.prompt must be a string containing {CLASS_FIELD}, got {template!r}")
    if not class_names:
        raise DiffbenchError("CLIP prompts need at least one class name, got none")
    return [template.replace(CLASS_FIELD, str(name)) for name in class_names]


def check_model_name(model: str, pretrained: str | None) -> None:
    """ParamsError unless ``model`` is an open_clip architecture and ``pretrained`` (if set) one of its tags."""
    if open_clip is None:
        raise DiffbenchError(f"CLIP score needs open_clip: {NO_OPEN_CLIP}")
    allowed = open_clip.list_models()
    if model not in allowed:
        close = difflib.get_close_matches(str(model), allowed, n=2)
        examples = list(dict.fromkeys(close + [m for m in COMMON_MODELS if m in allowed]))[:4]
        raise ParamsError(
            f"metrics.clip.model {model!r} is not an open_clip model; allowed: one of open_clip.list_models() "
            f"({len(allowed)}), e.g. {', '.join(examples)}"
        )
    if pretrained is not None and not open_clip.is_pretrained_cfg(model, pretrained):
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise ParamsError(
            f"metrics.clip.pretrained {pretrained!r} is not a pretrained tag of {model}; "
            f"allowed: {_some(tags) if tags else 'none (give metrics.clip.weights and pretrained: null)'}"
        )


def clip_unavailable_reason(model: str, pretrained: str | None, weights: str | None, download: bool) -> str | None:
    """Why no CLIP weights can be had (no local file, download off or no tag), else None.

    Bad names and a named file that does not exist are errors, not reasons (DiffbenchError).
    """
    if open_clip is None:
        return f"CLIP score unavailable: {NO_OPEN_CLIP}"
    check_model_name(model, pretrained)
    if resolve_clip_weights(weights) is not None:
        return None
    if pretrained is None:
        return f"no CLIP weights: metrics.clip.weights and ${WEIGHTS_ENV} unset and metrics.clip.pretrained is null"
    if not download:
        return (
            f"no CLIP weights: metrics.clip.weights and ${WEIGHTS_ENV} unset and metrics.clip.download "
            f"is false ({model} {pretrained} not downloaded)"
        )
    return None


# --------------------------------------------------------------------------- the model


def _weights_file(model: str, pretrained: str | None, weights: str | None) -> str:
    """The local weights file, downloading the pretrained tag if no file is named."""
    path = resolve_clip_weights(weights)
    if path is not None:
        return path
    if pretrained is None:
        raise DiffbenchError(
            f"no CLIP weights for {model}: set metrics.clip.weights, ${WEIGHTS_ENV} or metrics.clip.pretrained"
        )
    try:
        return str(open_clip.download_pretrained(open_clip.get_pretrained_cfg(model, pretrained)))
    except Exception as exc:
        raise DiffbenchError(
            f"cannot download CLIP weights {model} {pretrained} ({_first_line(exc)}); set metrics.clip.weights or "
            f"${WEIGHTS_ENV} to a local file, or metrics.clip.download: false to report CLIP as unavailable"
        ) from exc


class ClipScorer:
    """An open_clip model with its tokenizer: per-image CLIP scores and zero-shot accuracy."""

    def __init__(self, model: torch.nn.Module, tokenizer, info: dict, device: str):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = info
        self.device = device
        cfg = open_clip.get_model_preprocess_cfg(model)
        self.size = tuple(cfg["size"]) if isinstance(cfg["size"], (tuple, list)) else (cfg["size"],) * 2
        self.interpolation = cfg.get("interpolation", "bicubic")
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._text_cache: dict[tuple[str, ...], torch.Tensor] = {}

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """uint8 N×H×W×C images → normalised float32 N×3×S×S model input on the device."""
        x = as_nchw_rgb(images).to(self.device).float()
        h, w = x.shape[-2:]
        scale = max(self.size[0] / h, self.size[1] / w)  # shorter side to the input size, then centre crop
        resized = (max(self.size[0], round(h * scale)), max(self.size[1], round(w * scale)))
        if resized != (h, w):
            x = F.interpolate(x, size=resized, mode=self.interpolation, antialias=True, align_corners=False)
            x = x.clamp(0, 255).round()
        top, left = (resized[0] - self.size[0]) // 2, (resized[1] - self.size[1]) // 2
        x = x[..., top : top + self.size[0], left : left + self.size[1]]
        return (x / 255 - self.mean) / self.std

    def text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm K×D text embeddings of ``prompts``, computed once per prompt list."""
        key = tuple(prompts)
        if key not in self._text_cache:
            with torch.inference_mode():
                tokens = self.tokenizer(list(key)).to(self.device)
                self._text_cache[key] = self.model.encode_text(tokens, normalize=True).float()
        return self._text_cache[key]

    def _cosines(self, images: np.ndarray, prompts: list[str], batch_size: int) -> torch.Tensor:
        """N×K cosine similarities between every image and every prompt (float32, on the device)."""
        check_images(images)
        if batch_size < 1:
            raise DiffbenchError(f"CLIP batch_size must be >= 1, got {batch_size}")
        text = self.text_embeddings(prompts)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                emb = self.model.encode_image(self.preprocess(images[start : start + batch_size]), normalize=True)
                chunks.append(emb.float() @ text.T)
        return torch.cat(chunks)

    def scores(self, images: np.ndarray, labels: np.ndarray, prompts: list[str], batch_size: int) -> np.ndarray:
        """Per-image CLIP scores 100·max(cos, 0) against the prompt of each image's label (float64, N)."""
        check_images(images)
        labels = _labels(labels, len(images), len(prompts))
        cos = self._cosines(images, prompts, batch_size).cpu().double().numpy()
        return 100 * np.maximum(cos[np.arange(len(labels)), labels], 0)

    def zero_shot_correct(self, images: np.ndarray, labels: np.ndarray, prompts: list[str], batch_size: int) -> int:
        """How many images have their label's prompt as the most similar one."""
        check_images(images)
        labels = _labels(labels, len(images), len(prompts))
        predicted = self._cosines(images, prompts, batch_size).argmax(1).cpu().numpy()
        return int((predicted == labels).sum())

    def zero_shot_accuracy(self, images: np.ndarray, labels: np.ndarray, prompts: list[str], batch_size: int) -> float:
        """Zero-shot classification accuracy with the class prompts (argmax cosine)."""
        return self.zero_shot_correct(images, labels, prompts, batch_size) / len(images)


def _labels(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """``labels`` as an int64 array of length n with values in [0, num_classes), else DiffbenchError."""
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise DiffbenchError(f"CLIP labels must be an integer array of shape ({n},), got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DiffbenchError(
            f"CLIP labels must lie in [0, {num_classes}) (one prompt per class), got {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.int64)


def load_clip(model: str, pretrained: str | None, weights: str | None, device: str) -> ClipScorer:
    """The open_clip ``model`` with weights from ``weights`` / $DIFFBENCH_CLIP_WEIGHTS, else the downloaded tag.

    ``pretrained`` names what the weights are (it sets the preprocessing and QuickGELU of that tag); it
    may be None only with a local file. Never builds a model with random weights.
    """
    check_model_name(model, pretrained)
    path = _weights_file(model, pretrained, weights)
    tag_cfg = open_clip.get_pretrained_cfg(model, pretrained) if pretrained is not None else {}
    try:
        net = open_clip.create_model(
            model,
            pretrained=path,
            device=device,
            precision="fp32",
            pretrained_text=False,
            force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
            force_preprocess_cfg=tag_cfg,
        )
        tokenizer = open_clip.get_tokenizer(model)
    except Exception as exc:  # torch.load / load_state_dict (strict) failures
        raise DiffbenchError(
            f"cannot load CLIP weights {path} into {model} ({_first_line(exc)}); metrics.clip.weights / "
            f"${WEIGHTS_ENV} must be an open_clip state dict of that model"
        ) from exc
    cfg = open_clip.get_model_preprocess_cfg(net)
    info = {
        "backend": "open_clip",
        "backend_version": open_clip.__version__,
        "model": model,
        "pretrained": pretrained,
        "weights": path,
        "weights_sha256": sha256_file(path),
        "image_size": list(np.atleast_1d(cfg["size"]).tolist()),
        "image_mean": list(cfg["mean"]),
        "image_std": list(cfg["std"]),
        "interpolation": cfg.get("interpolation", "bicubic"),
        "precision": "fp32",
    }
    return ClipScorer(net, tokenizer, info, device)


# --------------------------------------------------------------------------- the guard


@dataclass(frozen=True)
class ClipCheck:
    """Outcome of the zero-shot check: passed, the one-line reason, and what produced it."""

    passed: bool
    reason: str
    correct: int
    n: int
    chance: float
    p_value: float
    prompts: tuple[str, ...]
    weights_sha256: str | None


def chance_test(correct: int, n: int, num_classes: int, alpha: float = DEFAULT_ALPHA) -> tuple[bool, str, float]:
    """(passed, one-line reason, p) of the one-sided binomial test "accuracy > 1/num_classes" at level ``alpha``."""
    if num_classes < 2 or n < 1 or not 0 <= correct <= n:
        raise DiffbenchError(
            f"zero-shot check needs >= 2 classes and 0 <= correct <= n >= 1; got {correct}/{n}, {num_classes} classes"
        )
    chance = 1 / num_classes
    p = float(stats.binomtest(int(correct), int(n), chance, alternative="greater").pvalue)
    summary = f"zero-shot accuracy {correct / n:.3f} ({correct}/{n}) on reference images vs chance {chance:.3f}"
    if p < alpha:
        return True, f"{summary}: binomial p = {p:.2g} < {alpha:g}", p
    return False, f"CLIP fails the zero-shot check: {summary} (binomial p = {p:.2g}, needs < {alpha:g})", p


def clip_check(
    scorer: ClipScorer,
    images: np.ndarray,
    labels: np.ndarray,
    prompts: list[str],
    batch_size: int,
    alpha: float = DEFAULT_ALPHA,
) -> ClipCheck:
    """Zero-shot check of ``scorer`` on real labelled reference images with the class ``prompts``."""
    correct = scorer.zero_shot_correct(images, labels, prompts, batch_size)
    passed, reason, p = chance_test(correct, len(images), len(prompts), alpha)
    return ClipCheck(
        passed, reason, correct, len(images), 1 / len(prompts), p, tuple(prompts), scorer.info.get("weights_sha256")
    )


# --------------------------------------------------------------------------- reported values


def _record(check: ClipCheck | None, reason: str | None, values: np.ndarray | None = None,
            level: float = 0.95) -> dict:
    """The CLIP entries of a metrics record, with the same keys whether a score is reported or not."""
    mean, lo, hi = mean_interval(values, level) if values is not None else (None, None, None)
    return {
        "clip_score": mean,
        "clip_score_lo": lo,
        "clip_score_hi": hi,
        "clip_score_unavailable": reason,
        "clip_n": None if values is None else len(values),
        "clip_zero_shot_accuracy": None if check is None else check.correct / check.n,
        "clip_zero_shot_n": None if check is None else check.n,
        "clip_zero_shot_p": None if check is None else check.p_value,
    }


def clip_unavailable_metrics(reason: str) -> dict:
    """The CLIP entries of a metrics record when no model could be loaded: numbers None, ``reason`` given."""
    return _record(None, reason)


def clip_metrics(
    scorer: ClipScorer, images: np.ndarray, labels: np.ndarray, prompts: list[str], batch_size: int, check: ClipCheck,
    level: float = 0.95,
) -> dict:
    """CLIP entries of a metrics record: mean score with its t-interval at ``level`` (params
    ``metrics.interval_level``), or None with the reason.

    ``check`` must come from :func:`clip_check` with this scorer's weights and the same prompts; after a
    failed check no image is scored and the check's reason is reported instead of a number.
    """
    if check.prompts != tuple(prompts) or check.weights_sha256 != scorer.info.get("weights_sha256"):
        raise DiffbenchError("the CLIP zero-shot check was made with other prompts or weights than the score")
    if not check.passed:
        return _record(check, check.reason)
    return _record(check, None, scorer.scores(images, labels, prompts, batch_size), level)
