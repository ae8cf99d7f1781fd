"""diffbench.metrics.clip_score: weights and params, scores against a hand computation, the zero-shot guard.

No CLIP weights exist offline: the whole path runs on a tiny randomly initialised open_clip model (1-layer
ViT and text transformer, width 32, 32×32 input) registered from a config JSON and saved to a tmp file.
"""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from scipy import stats

from diffbench.errors import DiffbenchError, ParamsError
from diffbench.hashing import sha256_file
from diffbench.metrics import clip_score
from diffbench.metrics.clip_score import (
    WEIGHTS_ENV,
    chance_test,
    class_prompts,
    clip_check,
    clip_metrics,
    clip_unavailable_metrics,
    clip_unavailable_reason,
    load_clip,
    resolve_clip_weights,
)

TINY = "diffbench-test-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
PROMPTS = class_prompts("a photo of a {class}", [str(k) for k in range(10)])


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> str:
    """State dict of a randomly initialised tiny open_clip model, registered under the name TINY."""
    folder = tmp_path_factory.mktemp("clip")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    path = folder / "tiny.pt"
    torch.save(open_clip.create_model(TINY).state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def scorer(tiny_weights) -> clip_score.ClipScorer:
    return load_clip(TINY, None, tiny_weights, "cpu")


def images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def one_line_error(exc_info, *needles: str) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return message


# --------------------------------------------------------------------------- params and weights


def test_explicit_weights_win_over_env(tmp_path, monkeypatch):
    explicit, env = tmp_path / "a.pt", tmp_path / "b.pt"
    explicit.write_bytes(b"a")
    env.write_bytes(b"b")
    monkeypatch.setenv(WEIGHTS_ENV, str(env))
    assert resolve_clip_weights(str(explicit)) == str(explicit)
    assert resolve_clip_weights(None) == str(env)
    monkeypatch.delenv(WEIGHTS_ENV)
    assert resolve_clip_weights(None) is None


def test_missing_weights_file_names_its_source(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(DiffbenchError) as err:
        resolve_clip_weights(str(tmp_path / "nope.pt"))
    one_line_error(err, "nope.pt", "metrics.clip.weights")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "gone.pt"))
    with pytest.raises(DiffbenchError) as err:
        resolve_clip_weights(None)
    one_line_error(err, "gone.pt", f"${WEIGHTS_ENV}")


def test_class_prompts_fill_the_template():
    assert class_prompts("a handwritten digit {class}", ["0", "1"]) == [
        "a handwritten digit 0",
        "a handwritten digit 1",
    ]
    assert class_prompts("{class}", ["cat"]) == ["cat"]


@pytest.mark.parametrize("template", ["a photo of a {}", "a photo", None, "a photo of a {label}"])
def test_class_prompts_need_the_class_field(template):
    with pytest.raises(ParamsError) as err:
        class_prompts(template, ["0"])
    one_line_error(err, "metrics.clip.prompt", "{class}")


def test_class_prompts_need_classes():
    with pytest.raises(DiffbenchError):
        class_prompts("a {class}", [])


def test_unknown_model_lists_allowed_names():
    with pytest.raises(ParamsError) as err:
        load_clip("ViT-Q-99", None, None, "cpu")
    one_line_error(err, "metrics.clip.model", "ViT-Q-99", "allowed:", "ViT-B-32")


def test_unknown_tag_lists_the_model_tags(tiny_weights):
    with pytest.raises(ParamsError) as err:
        load_clip("ViT-B-32", "no_such_tag", tiny_weights, "cpu")
    one_line_error(err, "metrics.clip.pretrained", "no_such_tag", "ViT-B-32", "laion2b_s34b_b79k")
    with pytest.raises(ParamsError) as err:  # a custom architecture has no tags at all
        load_clip(TINY, "openai", tiny_weights, "cpu")
    one_line_error(err, "metrics.clip.pretrained", "none")


def test_missing_weights_file_is_an_error(tmp_path, tiny_weights):
    with pytest.raises(DiffbenchError) as err:
        load_clip(TINY, None, str(tmp_path / "missing.pt"), "cpu")
    one_line_error(err, "missing.pt", "metrics.clip.weights")


def test_no_weights_and_no_tag_never_builds_a_random_model(monkeypatch, tiny_weights):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(DiffbenchError) as err:
        load_clip(TINY, None, None, "cpu")
    one_line_error(err, "metrics.clip.pretrained")


def test_corrupt_weights_file_is_an_error(tmp_path, tiny_weights):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DiffbenchError) as err:
        load_clip(TINY, None, str(corrupt), "cpu")
    one_line_error(err, "corrupt.pt", TINY, "metrics.clip.weights")


def test_weights_of_another_architecture_are_an_error(tmp_path, tiny_weights):
    state = torch.load(tiny_weights, weights_only=True)
    state.pop("text_projection")
    partial = tmp_path / "partial.pt"
    torch.save(state, partial)
    with pytest.raises(DiffbenchError) as err:
        load_clip(TINY, None, str(partial), "cpu")
    one_line_error(err, "partial.pt", "state dict")


def test_provenance_records_model_and_weights_hash(scorer, tiny_weights):
    info = scorer.info
    assert info["model"] == TINY and info["pretrained"] is None and info["weights"] == tiny_weights
    assert info["weights_sha256"] == sha256_file(tiny_weights)
    assert info["backend"] == "open_clip" and info["backend_version"] == open_clip.__version__
    assert info["image_size"] == [32, 32] and info["image_mean"] == list(open_clip.OPENAI_DATASET_MEAN)


def test_env_weights_are_loaded(monkeypatch, tiny_weights):
    monkeypatch.setenv(WEIGHTS_ENV, tiny_weights)
    assert load_clip(TINY, None, None, "cpu").info["weights"] == tiny_weights


# --------------------------------------------------------------------------- unavailable without weights


def test_unavailable_reasons(monkeypatch, tiny_weights):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert clip_unavailable_reason(TINY, None, tiny_weights, download=False) is None
    assert clip_unavailable_reason("ViT-B-32", "laion2b_s34b_b79k", None, download=True) is None
    offline = clip_unavailable_reason("ViT-B-32", "laion2b_s34b_b79k", None, download=False)
    assert "metrics.clip.download" in offline and WEIGHTS_ENV in offline and "\n" not in offline
    assert "metrics.clip.pretrained is null" in clip_unavailable_reason(TINY, None, None, download=True)
    monkeypatch.setattr(clip_score, "open_clip", None)
    assert "open_clip is not installed" in clip_unavailable_reason("ViT-B-32", "openai", None, download=True)


def test_unavailable_metrics_carry_the_reason_and_no_number():
    out = clip_unavailable_metrics("no CLIP weights: offline")
    assert out["clip_score"] is None and out["clip_score_lo"] is None and out["clip_score_hi"] is None
    assert out["clip_score_unavailable"] == "no CLIP weights: offline"


# --------------------------------------------------------------------------- scores


def hand_cosines(scorer, imgs: np.ndarray, prompts: list[str]) -> np.ndarray:
    """Cosines from the model's own encoders on 32×32 RGB images (no resize needed), in float64."""
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    x = (torch.tensor(imgs).permute(0, 3, 1, 2).float() / 255 - mean) / std
    with torch.no_grad():
        img = scorer.model.encode_image(x).double()
        txt = scorer.model.encode_text(open_clip.get_tokenizer(TINY)(prompts)).double()
    img, txt = img / img.norm(dim=1, keepdim=True), txt / txt.norm(dim=1, keepdim=True)
    return (img @ txt.T).numpy()


def test_scores_equal_the_hand_computation(scorer):
    imgs = images((24, 32, 32, 3))
    labels = np.arange(24) % 10
    cos = hand_cosines(scorer, imgs, PROMPTS)[np.arange(24), labels]
    got = scorer.scores(imgs, labels, PROMPTS, batch_size=7)
    assert got.dtype == np.float64 and got.shape == (24,)
    np.testing.assert_allclose(got, 100 * np.maximum(cos, 0), rtol=1e-5, atol=1e-4)
    assert (cos < 0).any() and (got[cos < 0] == 0).all()  # negative cosines count as 0
    assert (cos > 0).any() and (got[cos > 0] > 0).all()


def test_each_image_is_scored_against_its_labels_prompt(scorer):
    imgs = images((10, 32, 32, 3), seed=1)
    cos = hand_cosines(scorer, imgs, PROMPTS)
    for labels in (np.zeros(10, dtype=int), np.arange(10)[::-1].copy()):
        expected = 100 * np.maximum(cos[np.arange(10), labels], 0)
        np.testing.assert_allclose(scorer.scores(imgs, labels, PROMPTS, 4), expected, rtol=1e-5, atol=1e-4)


def test_scores_do_not_depend_on_batch_size(scorer):
    imgs, labels = images((9, 32, 32, 3), seed=2), np.arange(9) % 10
    np.testing.assert_allclose(
        scorer.scores(imgs, labels, PROMPTS, 2), scorer.scores(imgs, labels, PROMPTS, 9), atol=1e-4
    )


def test_text_embeddings_are_computed_once_per_prompt_list(scorer):
    assert scorer.text_embeddings(PROMPTS) is scorer.text_embeddings(list(PROMPTS))


def test_grayscale_is_scored_as_three_equal_channels(scorer):
    gray = images((4, 32, 32, 1), seed=3)
    labels = np.arange(4)
    np.testing.assert_allclose(
        scorer.scores(gray, labels, PROMPTS, 4), scorer.scores(np.repeat(gray, 3, axis=3), labels, PROMPTS, 4)
    )


def test_resize_matches_open_clip_transform_within_tolerance(scorer):
    """28×28 digits-like blocks resized to 32: within 0.5 grey levels on average of open_clip's PIL transform.

    PIL's bicubic kernel (a = -0.5) is not torch's (a = -0.75): single pixels at hard edges differ by up to
    ~13 grey levels, embeddings agree to cosine > 0.9999.
    """
    rng = np.random.default_rng(4)
    gray = np.kron(rng.integers(0, 256, (6, 7, 7)), np.ones((4, 4))).astype(np.uint8)[..., None]
    ours = scorer.preprocess(gray)
    transform = open_clip.image_transform(32, is_train=False)
    theirs = torch.stack([transform(Image.fromarray(g[..., 0]).convert("RGB")) for g in gray])
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    assert ((ours - theirs) * std * 255).abs().mean() < 0.5
    with torch.no_grad():
        a, b = (scorer.model.encode_image(x, normalize=True) for x in (ours, theirs))
    assert (a * b).sum(1).min() > 0.9999


@pytest.mark.parametrize("labels", [np.array([0, 10]), np.array([0]), np.array([0.0, 1.0]), np.array([-1, 0])])
def test_bad_labels_are_refused(scorer, labels):
    with pytest.raises(DiffbenchError) as err:
        scorer.scores(images((2, 32, 32, 3)), labels, PROMPTS, 2)
    one_line_error(err, "labels")


def test_bad_images_are_refused(scorer):
    with pytest.raises(DiffbenchError):
        scorer.scores(images((2, 32, 32, 3)).astype(np.float32), np.zeros(2, dtype=int), PROMPTS, 2)


# --------------------------------------------------------------------------- the guard


def test_zero_shot_accuracy_is_the_argmax_of_the_cosines(scorer):
    imgs, labels = images((20, 32, 32, 3), seed=5), np.arange(20) % 10
    predicted = hand_cosines(scorer, imgs, PROMPTS).argmax(1)
    assert scorer.zero_shot_accuracy(imgs, labels, PROMPTS, 8) == pytest.approx((predicted == labels).mean())


@pytest.mark.parametrize(
    ("correct", "n", "k", "passed"),
    [
        (500, 1000, 10, True),  # real CLIP on MNIST (~50%)
        (900, 1000, 10, True),  # real CLIP on CIFAR-10 (~90%)
        (110, 1000, 10, False),  # random weights: chance
        (130, 1000, 10, False),  # above chance, not significantly (p ~ 1e-3)
        (10, 10, 2, False),  # perfect but too few images for p < 1e-6 (p = 2^-10)
        (30, 30, 2, True),
    ],
)
def test_chance_test(correct, n, k, passed):
    ok, reason, p = chance_test(correct, n, k)
    assert ok is passed and (p < 1e-6) is passed
    assert p == pytest.approx(stats.binom.sf(correct - 1, n, 1 / k))
    assert "\n" not in reason and f"({correct}/{n})" in reason and f"chance {1 / k:.3f}" in reason


def test_chance_test_refuses_nonsense_counts():
    for args in ((5, 4, 10), (1, 0, 10), (1, 4, 1)):
        with pytest.raises(DiffbenchError):
            chance_test(*args)


def test_random_weights_fail_the_guard_and_report_no_number(scorer, monkeypatch):
    rng = np.random.default_rng(6)
    ref, ref_labels = images((200, 32, 32, 3), seed=6), rng.integers(0, 10, 200)
    check = clip_check(scorer, ref, ref_labels, PROMPTS, 100)
    assert not check.passed and "fails the zero-shot check" in check.reason and "/200" in check.reason

    def no_scoring(*args, **kwargs):
        raise AssertionError("images were scored after a failed check")

    monkeypatch.setattr(scorer, "scores", no_scoring)
    out = clip_metrics(scorer, images((8, 32, 32, 3)), np.arange(8), PROMPTS, 8, check)
    assert out["clip_score"] is None and out["clip_score_lo"] is None and out["clip_score_hi"] is None
    assert out["clip_score_unavailable"] == check.reason
    assert out["clip_zero_shot_n"] == 200 and out["clip_zero_shot_accuracy"] == check.correct / 200


def test_a_model_that_classifies_the_reference_passes_and_reports_the_mean(scorer):
    ref = images((40, 32, 32, 3), seed=7)
    own = hand_cosines(scorer, ref, PROMPTS).argmax(1)  # labels the model gets right by construction
    check = clip_check(scorer, ref, own, PROMPTS, 40)
    assert check.passed and check.correct == 40 and check.p_value < 1e-6
    gen, labels = images((12, 32, 32, 3), seed=8), np.arange(12) % 10
    out = clip_metrics(scorer, gen, labels, PROMPTS, 5, check)
    values = scorer.scores(gen, labels, PROMPTS, 5)
    assert out["clip_score"] == pytest.approx(values.mean()) and out["clip_n"] == 12
    assert out["clip_score_unavailable"] is None
    lo, hi = stats.t.interval(0.95, 11, loc=values.mean(), scale=stats.sem(values))
    assert (out["clip_score_lo"], out["clip_score_hi"]) == pytest.approx((lo, hi))


def test_a_check_with_other_prompts_is_refused(scorer):
    ref = images((10, 32, 32, 3), seed=9)
    check = clip_check(scorer, ref, np.arange(10), PROMPTS, 10)
    other = class_prompts("a handwritten digit {class}", [str(k) for k in range(10)])
    with pytest.raises(DiffbenchError):
        clip_metrics(scorer, ref, np.arange(10), other, 10, check)


def test_the_interval_level_sets_the_width_of_the_clip_interval():
    from diffbench.metrics.clip_score import _record

    values = np.random.default_rng(0).normal(30.0, 2.0, 200)
    wide, narrow = _record(None, None, values, 0.99), _record(None, None, values, 0.8)
    assert wide["clip_score"] == narrow["clip_score"]
    assert wide["clip_score_hi"] - wide["clip_score_lo"] > 1.5 * (narrow["clip_score_hi"] - narrow["clip_score_lo"])
