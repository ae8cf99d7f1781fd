"""diffbench.metrics.suite: one flat dict of points and intervals, equal to torch-fidelity's points."""

from __future__ import annotations

import numpy as np
import pytest

from diffbench.metrics.fidelity import compute_all
from diffbench.metrics.suite import SuiteConfig, fidelity_metrics
from tests.metrics.references import gaussian

CONFIG = SuiteConfig(kid_subset_size=30, kid_subsets=4, prc_k=3, resamples=6, seed=5, is_splits=4)
METRICS = ("fid", "kid_mean", "precision", "recall")


def test_points_equal_torch_fidelity_and_sit_inside_their_intervals():
    gen, ref = {"pool": gaussian(60, 6, 1, shift=0.3)}, {"pool": gaussian(80, 6, 2)}
    out = fidelity_metrics(gen, ref, CONFIG, device="cpu")
    want = compute_all(gen, ref, kid_subset_size=30, kid_subsets=4, prc_k=3, seed=5)
    for key in METRICS:
        assert out[key] == pytest.approx(want[key], rel=1e-6, abs=1e-7), key
        assert out[f"{key}_lo"] < out[key] < out[f"{key}_hi"], key
    assert out["kid_std"] == pytest.approx(want["kid_std"], rel=1e-6)
    assert out["inception_score_mean"] is None and "no logits" in out["inception_score_unavailable"]
    assert out["inception_score_mean_lo"] is None
    assert "B=6" in out["interval_method"] and out["interval_level"] == 0.95
    assert all(v is None or isinstance(v, (int, float, str)) for v in out.values())


def test_is_with_logits_gets_an_interval_and_fewer_splits_for_few_samples():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(40, 5)) * 3
    gen = {"pool": gaussian(40, 4, 4), "logits": logits}
    out = fidelity_metrics(gen, {"pool": gaussian(20, 4, 5)}, CONFIG, device="cpu")
    assert out["inception_score_splits"] == 4
    assert out["inception_score_mean_lo"] < out["inception_score_mean"] < out["inception_score_mean_hi"]
    small = fidelity_metrics({"pool": gen["pool"][:8], "logits": logits[:8]}, {"pool": gaussian(20, 4, 5)},
                             SuiteConfig(8, 2, 3, resamples=4, is_splits=10), device="cpu")
    assert small["inception_score_splits"] == 8


def test_a_better_set_gets_a_lower_fid_interval():
    ref = {"pool": gaussian(200, 4, 6)}
    near = fidelity_metrics({"pool": gaussian(200, 4, 7)}, ref, CONFIG, device="cpu")
    far = fidelity_metrics({"pool": gaussian(200, 4, 8, shift=1.0)}, ref, CONFIG, device="cpu")
    assert near["fid_hi"] < far["fid_lo"]


def test_intervals_stay_inside_the_range_of_their_metric():
    # 8 generated points among 10 reference points: recall's half-sample spread is wide.
    gen, ref = {"pool": gaussian(8, 3, 9)}, {"pool": gaussian(10, 3, 10)}
    out = fidelity_metrics(gen, ref, SuiteConfig(4, 2, 1, resamples=5), device="cpu")
    for key in ("precision", "recall"):
        assert 0.0 <= out[f"{key}_lo"] <= out[key] <= out[f"{key}_hi"] <= 1.0, key
