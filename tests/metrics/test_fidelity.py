"""diffbench.metrics.fidelity against independent implementations of each metric.

Every metric is compared with code written here from the papers' definitions (scipy.linalg.sqrtm for
FID, the unbiased MMD² sum for KID, brute-force k-NN balls for precision/recall, the KL formula for IS),
never with torch-fidelity itself, which is what the wrappers call.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_fidelity.metric_prc import prc_features_to_metric

from diffbench.errors import DiffbenchError
from diffbench.metrics import fidelity
from diffbench.metrics.fidelity import (
    IS_NO_LOGITS,
    compute_all,
    fid_from_features,
    fid_from_statistics,
    inception_score,
    kid_from_features,
    precision_recall,
)
from tests.metrics.references import (
    fid_scipy,
    gaussian,
    is_by_hand,
    lattice,
    mmd2_unbiased,
    prc_brute,
)

# --------------------------------------------------------------------------- FID


def test_fid_matches_scipy_sqrtm():
    a, b = gaussian(500, 64, 1), gaussian(500, 64, 2, shift=0.2, scale=1.3)
    ours, ref = fid_from_features(a, b), fid_scipy(a, b)
    assert ref > 1.0
    assert abs(ours - ref) / ref <= 1e-6


def test_fid_of_a_set_with_itself_is_zero_to_rounding():
    # FID(X, X) = 2 tr(Σ) - 2 tr(sqrt(Σ·Σ)): a difference of two numbers of size tr(Σ), the second a
    # sum of 64 square-rooted eigenvalues, so float64 rounding leaves about ±1e-15 × tr(Σ) (measured:
    # |FID| <= 6e-14 for tr(Σ) ≈ 70; scipy's sqrtm gives -1e-13 to -2e-13). The bound is relative to
    # tr(Σ) so it holds at any feature scale; 1e-9 leaves a wide margin yet fails on a real
    # difference (a shift of 1e-4 per dimension gives 64e-8 = 6.4e-7 > 1e-9 × 70).
    a = gaussian(500, 64, 3)
    trace = np.trace(np.cov(a, rowvar=False))
    assert abs(fid_from_features(a, a)) < 1e-9 * trace
    assert fid_from_features(a, a + 1e-4) > 1e-9 * trace


def test_fid_grows_with_shift_by_exactly_the_squared_mean_difference():
    a = gaussian(500, 64, 4)
    fids = [fid_from_features(a, a + delta) for delta in (0.1, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids)
    # same covariance, means apart by delta in each of 64 dims: FID = 64·delta²
    assert fids[-1] == pytest.approx(64 * 2.0**2, rel=1e-9)


def test_fid_from_statistics_accepts_mixed_dtypes_and_checks_shapes():
    a, b = gaussian(200, 8, 5), gaussian(200, 8, 6, shift=0.5)
    mu1, s1 = a.mean(0).astype(np.float32), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    assert fid_from_statistics(mu1, s1, mu2, s2) == pytest.approx(fid_scipy(a, b), rel=1e-6)
    with pytest.raises(DiffbenchError, match="statistics do not match"):
        fid_from_statistics(mu1, s1, mu2[:4], s2[:4, :4])


def test_float32_features_give_the_float64_answer_to_float32_precision():
    a, b = gaussian(500, 64, 7), gaussian(500, 64, 8, shift=0.3)
    assert fid_from_features(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(fid_scipy(a, b), rel=1e-4)


@pytest.mark.parametrize(
    "gen, ref, message",
    [
        (np.zeros((1, 4)), np.zeros((5, 4)), "generated features"),
        (np.zeros((5, 4), np.int64), np.zeros((5, 4)), "generated features"),
        (np.zeros((5, 4)), np.full((5, 4), np.nan), "reference features contain NaN"),
        (np.zeros((5, 4)), np.zeros((5, 3)), "differ in width"),
    ],
)
def test_bad_features_are_one_line_errors(gen, ref, message):
    with pytest.raises(DiffbenchError, match=message):
        fid_from_features(gen, ref)


# --------------------------------------------------------------------------- KID


def test_kid_whole_set_equals_closed_form_unbiased_mmd():
    # subsets=1, subset_size=n: torch-fidelity draws rng.choice(n, n, replace=False), a permutation,
    # and the unbiased MMD² is invariant to permuting either set, so the estimate is the whole-set MMD².
    x, y = gaussian(60, 16, 9), gaussian(60, 16, 10, shift=0.4)
    mean, std = kid_from_features(x, y, subset_size=60, subsets=1, seed=0)
    assert mean == pytest.approx(mmd2_unbiased(x, y), rel=1e-10)
    assert std == 0.0


def test_kid_subsets_follow_torch_fidelity_sampling():
    # torch-fidelity: rng = np.random.RandomState(seed); per subset, choice(n_gen, m) then choice(n_ref, m),
    # both without replacement; KID = mean and population std of the per-subset MMD².
    x, y, m, seed = gaussian(50, 8, 11), gaussian(70, 8, 12, shift=0.2), 20, 123
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(5):
        ix, iy = rng.choice(len(x), m, replace=False), rng.choice(len(y), m, replace=False)
        mmds.append(mmd2_unbiased(x[ix], y[iy]))
    mean, std = kid_from_features(x, y, subset_size=m, subsets=5, seed=seed)
    assert mean == pytest.approx(np.mean(mmds), rel=1e-10)
    assert std == pytest.approx(np.std(mmds), rel=1e-8)


def test_kid_subset_size_is_clipped_to_the_smaller_set():
    x, y = gaussian(30, 8, 13), gaussian(30, 8, 14)
    assert kid_from_features(x, y, 1000, 3, seed=1) == kid_from_features(x, y, 30, 3, seed=1)
    assert fidelity.kid_subset_size_for(1000, 30, 45) == 30
    with pytest.raises(DiffbenchError, match="at least 2"):
        fidelity.kid_subset_size_for(1000, 1, 45)


def test_kid_same_distribution_is_near_zero_and_shift_is_not():
    x, y = gaussian(200, 16, 15), gaussian(200, 16, 16)
    same, _ = kid_from_features(x, y, 100, 10, seed=0)
    moved, _ = kid_from_features(x, y + 1.0, 100, 10, seed=0)
    assert abs(same) < 0.05 < moved


# --------------------------------------------------------------------------- precision / recall


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_match_brute_force_with_exact_ties(seed, k):
    # Integer coordinates make distances exact in any summation order (also in torch.cdist's
    # matrix-product path, used above 25 rows), so ties at the ball boundary are decided identically.
    gen, ref = lattice(30, 4, seed), lattice(40, 4, seed + 100) + (seed == 2)
    assert precision_recall(gen, ref, k) == prc_brute(gen, ref, k)


def test_precision_recall_match_brute_force_on_gaussians():
    gen, ref = gaussian(40, 6, 20, shift=0.5), gaussian(35, 6, 21)
    got = precision_recall(gen, ref, 3)
    assert got == prc_brute(gen, ref, 3)
    assert 0.0 < got[0] < 1.0 and 0.0 < got[1] < 1.0


def test_precision_recall_of_a_set_with_itself_is_one():
    x = gaussian(30, 5, 22)
    assert precision_recall(x, x, 3) == (1.0, 1.0)


def test_k_at_or_above_set_size_is_a_clear_error():
    gen, ref = gaussian(5, 3, 23), gaussian(8, 3, 24)
    # torch-fidelity itself crashes inside torch.kthvalue (k+1 > set size) ...
    with pytest.raises(RuntimeError):
        prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(ref), prc_neighborhood=5, verbose=False)
    # ... so the wrapper refuses first, naming k and the set sizes.
    with pytest.raises(DiffbenchError, match="k=5 needs 1 <= k < set size; got 5 generated, 8 reference"):
        precision_recall(gen, ref, 5)
    with pytest.raises(DiffbenchError, match="k=0"):
        precision_recall(gen, ref, 0)
    assert precision_recall(gen, ref, 4) == prc_brute(gen, ref, 4)  # k = n - 1: largest allowed


# --------------------------------------------------------------------------- Inception Score


def test_is_without_logits_is_unavailable_with_a_reason():
    assert inception_score(None) == (None, None, IS_NO_LOGITS)
    mean, std, reason = inception_score(np.full((20, 5), np.nan))
    assert (mean, std) == (None, None) and "not finite" in reason


@pytest.mark.parametrize("splits", [1, 3, 10])
def test_is_matches_hand_computation(splits):
    logits = np.random.default_rng(30).standard_normal((50, 7)) * 3
    mean, std, reason = inception_score(logits, splits=splits, seed=7)
    want_mean, want_std = is_by_hand(logits, splits, seed=7)
    assert reason is None
    assert mean == pytest.approx(want_mean, rel=1e-12)
    assert std == pytest.approx(want_std, rel=1e-9, abs=1e-12)


def test_is_of_confident_balanced_classes_is_the_class_count():
    # p(y|x) one-hot, p(y) uniform over C classes: KL = log C for every x, so IS = C.
    classes = 8
    logits = 60.0 * np.eye(classes)[np.arange(80) % classes]
    mean, std, _ = inception_score(logits, splits=1)
    assert mean == pytest.approx(classes, rel=1e-9) and std == 0.0


def test_is_needs_at_least_one_sample_per_split():
    with pytest.raises(DiffbenchError, match="splits=10"):
        inception_score(np.zeros((5, 3)), splits=10)


# --------------------------------------------------------------------------- compute_all


def test_compute_all_is_flat_plain_and_records_the_clipped_kid_size():
    gen, ref = {"pool": gaussian(40, 16, 40, shift=0.3)}, {"pool": gaussian(50, 16, 41)}
    out = compute_all(gen, ref, kid_subset_size=1000, kid_subsets=4, prc_k=3, seed=5)
    assert out == {
        "fid": fid_from_features(gen["pool"], ref["pool"]),
        "kid_mean": kid_from_features(gen["pool"], ref["pool"], 40, 4, 5)[0],
        "kid_std": kid_from_features(gen["pool"], ref["pool"], 40, 4, 5)[1],
        "kid_subset_size": 40,
        "precision": precision_recall(gen["pool"], ref["pool"], 3)[0],
        "recall": precision_recall(gen["pool"], ref["pool"], 3)[1],
        "prc_k": 3,
        "inception_score_mean": None,
        "inception_score_std": None,
        "inception_score_unavailable": IS_NO_LOGITS,
    }
    assert all(type(v) in (float, int, str, type(None)) for v in out.values())


def test_compute_all_reports_is_when_logits_exist():
    logits = np.random.default_rng(42).standard_normal((40, 10))
    gen, ref = {"pool": gaussian(40, 8, 43), "logits": logits}, {"pool": gaussian(40, 8, 44)}
    out = compute_all(gen, ref, kid_subset_size=20, kid_subsets=2, prc_k=3, seed=9, is_splits=4)
    assert (out["inception_score_mean"], out["inception_score_std"]) == pytest.approx(is_by_hand(logits, 4, 9))
    assert out["inception_score_unavailable"] is None
