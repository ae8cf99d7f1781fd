"""diffbench.metrics.fast: the device implementations equal torch-fidelity's and the independent oracles.

FID is held to scipy's sqrtm formulation (relative error <= 1e-6) and to a rank-robust SVD form where
the generated covariance is singular; KID and precision/recall to torch-fidelity (same subsets, same
distances) and to the brute-force definitions in tests/metrics/references.py, ties included.
"""

from __future__ import annotations

import numpy as np
import pytest

from diffbench.errors import DiffbenchError
from diffbench.metrics.fast import (
    FidStatistic,
    KidStatistic,
    PrecisionRecallStatistic,
    fid_fast,
    reference_statistics,
)
from diffbench.metrics.fidelity import (
    fid_from_features,
    kid_from_features,
    precision_recall,
)
from tests.metrics.references import (
    fid_scipy,
    gaussian,
    lattice,
    mmd2_unbiased,
    prc_brute,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sqrt_basis(sigma: np.ndarray) -> np.ndarray:
    """d×r H = V_r Λ_r^{1/2} over the eigenvalues above 1e-12·λ_max: H Hᵀ = Σ."""
    w, v = np.linalg.eigh(sigma)
    keep = w > 1e-12 * w.max()
    return v[:, keep] * np.sqrt(w[keep])


def fid_svd(gen: np.ndarray, ref: np.ndarray) -> float:
    """FID with tr sqrt(Σ_g Σ_r) as the nuclear norm of (X − μ)H/√(n−1): no sqrt of rounding noise."""
    mu_r, sigma_r = reference_statistics(ref)
    y = (gen - gen.mean(0)) @ sqrt_basis(sigma_r) / np.sqrt(len(gen) - 1)
    diff = gen.mean(0) - mu_r
    tr_g = np.trace(np.cov(gen, rowvar=False))
    return float(diff @ diff + tr_g + np.trace(sigma_r) - 2 * np.linalg.svd(y, compute_uv=False).sum())


# --------------------------------------------------------------------------- FID


@pytest.mark.parametrize("route", ["auto", "d"])
def test_fid_matches_scipy_within_1e6(route):
    gen, ref = gaussian(500, 32, 1, shift=0.3, scale=1.2), gaussian(600, 32, 2)
    got = fid_fast(gen, *reference_statistics(ref), route=route)
    assert got == pytest.approx(fid_scipy(gen, ref), rel=1e-6)
    assert got == pytest.approx(fid_from_features(gen, ref), rel=1e-8)


def test_fid_of_a_set_with_itself_is_zero():
    x = gaussian(300, 16, 3)
    assert abs(fid_fast(x, *reference_statistics(x))) < 1e-9


def test_fid_of_subsets_equals_fid_of_the_subset_itself():
    gen, ref = gaussian(200, 24, 4, shift=0.2), gaussian(250, 24, 5)
    fid = FidStatistic(gen, *reference_statistics(ref))
    idx = np.sort(np.random.default_rng(0).permutation(200)[:100])
    assert fid.fid(idx) == pytest.approx(fid_scipy(gen[idx], ref), rel=1e-6)
    dup = np.random.default_rng(1).integers(0, 200, 200)  # repeated rows count with multiplicity
    assert fid.fid(dup) == pytest.approx(fid_from_features(gen[dup], ref), rel=1e-8)


def test_fid_with_singular_generated_covariance_matches_svd_form():
    """n = 60 < d = 128: Σ_g has rank 59; the n×n route (auto picks it) agrees with the SVD form to 1e-9."""
    gen, ref = gaussian(60, 128, 6, shift=0.3), gaussian(400, 128, 7)
    assert fid_fast(gen, *reference_statistics(ref)) == pytest.approx(fid_svd(gen, ref), rel=1e-9)


def test_fid_with_singular_reference_drops_its_null_directions():
    gen, ref = gaussian(300, 64, 8, shift=0.2), gaussian(40, 64, 9)
    assert fid_fast(gen, *reference_statistics(ref)) == pytest.approx(fid_svd(gen, ref), rel=1e-9)


def test_fid_bad_statistics_and_route_are_one_line_errors():
    gen = gaussian(20, 4, 10)
    with pytest.raises(DiffbenchError, match="do not match 4-wide"):
        FidStatistic(gen, np.zeros(3), np.eye(3))
    with pytest.raises(DiffbenchError, match="NaN or inf"):
        FidStatistic(gen, np.full(4, np.nan), np.eye(4))
    with pytest.raises(DiffbenchError, match="route must be"):
        FidStatistic(gen, np.zeros(4), np.eye(4)).fid(None, "x")


# --------------------------------------------------------------------------- KID


def test_kid_equals_torch_fidelity_subset_for_subset():
    gen, ref = gaussian(120, 8, 11, shift=0.4), gaussian(150, 8, 12)
    kid = KidStatistic(gen, ref, subset_size=50, subsets=7, seed=3)
    mean, std = kid.kid()
    want_mean, want_std = kid_from_features(gen, ref, 50, 7, seed=3)
    assert (mean, std) == pytest.approx((want_mean, want_std), rel=1e-10)
    idx = np.arange(0, 120, 2)
    assert kid.kid(idx)[0] == pytest.approx(kid_from_features(gen[idx], ref, 50, 7, seed=3)[0], rel=1e-10)


def test_kid_on_whole_sets_is_the_closed_form_unbiased_mmd():
    gen, ref = gaussian(25, 5, 13, shift=0.5), gaussian(25, 5, 14)
    mean, std = KidStatistic(gen, ref, subset_size=25, subsets=1).kid()
    assert mean == pytest.approx(mmd2_unbiased(gen, ref), rel=1e-10) and std == 0.0


def test_kid_clips_its_subset_size_and_refuses_tiny_sets():
    gen, ref = gaussian(30, 4, 15), gaussian(40, 4, 16)
    assert KidStatistic(gen, ref, 1000, 2).kid()[0] == pytest.approx(kid_from_features(gen, ref, 1000, 2)[0], rel=1e-10)
    with pytest.raises(DiffbenchError, match="kid_subsets must be >= 1"):
        KidStatistic(gen, ref, 10, 0)
    with pytest.raises(DiffbenchError, match="at least 2 samples"):
        KidStatistic(gen, ref, 10, 2).kid(np.array([0]))


# --------------------------------------------------------------------------- precision / recall


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_match_brute_force_with_ties(k):
    gen, ref = lattice(30, 4, k), lattice(40, 4, k + 100)
    prc = PrecisionRecallStatistic(gen, ref, k)
    assert (prc.precision(), prc.recall()) == pytest.approx(prc_brute(gen, ref, k), abs=1e-7)


def test_precision_recall_equal_torch_fidelity_on_subsets():
    gen, ref = gaussian(80, 6, 17, shift=0.4), gaussian(70, 6, 18)
    prc = PrecisionRecallStatistic(gen, ref, 3)
    assert (prc.precision(), prc.recall()) == pytest.approx(precision_recall(gen, ref, 3), abs=1e-7)
    idx = np.sort(np.random.default_rng(2).permutation(80)[:40])
    assert (prc.precision(idx), prc.recall(idx)) == pytest.approx(precision_recall(gen[idx], ref, 3), abs=1e-7)


def test_k_as_large_as_a_set_is_a_clear_error():
    gen, ref = gaussian(5, 3, 19), gaussian(8, 3, 20)
    with pytest.raises(DiffbenchError, match="k=5 needs 1 <= k < set size; got 5 generated, 8 reference"):
        PrecisionRecallStatistic(gen, ref, 5)
    prc = PrecisionRecallStatistic(gen, ref, 4)  # k = n − 1: the largest allowed
    assert (prc.precision(), prc.recall()) == pytest.approx(prc_brute(gen, ref, 4), abs=1e-7)
    with pytest.raises(DiffbenchError, match="needs more than 4 generated samples, got 3"):
        prc.recall(np.array([0, 1, 2]))


def test_kid_from_kernel_matrices_equals_kid_from_each_subsets_features():
    gen, ref = gaussian(90, 6, 21, shift=0.3), gaussian(110, 6, 22)
    cached = KidStatistic(gen, ref, subset_size=40, subsets=9, seed=5)
    direct = KidStatistic(gen, ref, subset_size=40, subsets=9, seed=5, kernel_budget=0)
    assert cached.kernels is not None and direct.kernels is None
    idx = np.sort(np.random.default_rng(0).permutation(90)[:45])
    repeated = np.sort(np.random.default_rng(1).integers(0, 90, 60))  # rows drawn with replacement count twice
    assert len(np.unique(repeated)) < len(repeated)
    for rows in (None, idx, repeated):
        assert cached.kid(rows) == pytest.approx(direct.kid(rows), rel=1e-12)
    many = [idx, np.sort(np.random.default_rng(2).permutation(90)[:45])]
    assert cached.kid_many(many) == pytest.approx(direct.kid_many(many), rel=1e-12)
    assert cached.kid(idx) != pytest.approx(cached.kid(None), rel=1e-3)  # the subset is scored, not the whole set


def test_every_statistic_of_many_subsets_equals_the_statistic_of_each():
    gen, ref = gaussian(80, 6, 31, shift=0.3), gaussian(90, 6, 32)
    subsets = [np.sort(np.random.default_rng(b).permutation(80)[:40]) for b in range(5)]
    fid = FidStatistic(gen, *reference_statistics(ref))
    assert fid.fid_many(subsets) == pytest.approx([fid.fid(idx) for idx in subsets], rel=1e-10)
    assert fid.fid_many(subsets, "n") == pytest.approx([fid.fid(idx, "n") for idx in subsets], rel=1e-10)
    mixed = subsets[:2] + [np.arange(0, 80, 3)]  # sizes differ: decomposed one by one
    assert fid.fid_many(mixed) == pytest.approx([fid.fid(idx) for idx in mixed], rel=1e-10)
    kid = KidStatistic(gen, ref, subset_size=20, subsets=6, seed=4)
    assert kid.kid_many(subsets) == pytest.approx([kid.kid(idx)[0] for idx in subsets], rel=1e-12)
    assert len(set(np.round(kid.kid_many(subsets), 12))) == len(subsets)  # each subset scored on its own rows
    prc = PrecisionRecallStatistic(gen, ref, 3)
    assert prc.precision_many(subsets) == pytest.approx([prc.precision(idx) for idx in subsets], abs=0)
    assert prc.recall_many(subsets) == pytest.approx([prc.recall(idx) for idx in subsets], abs=0)
    assert fid.fid_many([]).shape == kid.kid_many([]).shape == prc.recall_many([]).shape == (0,)


def test_reference_statistics_are_numpys_mean_and_covariance():
    ref = np.random.default_rng(3).standard_normal((300, 12)).astype(np.float32) * 5 + 2
    mu, sigma = reference_statistics(ref)
    ref64 = ref.astype(np.float64)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, ref64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(ref64, rowvar=False), rtol=1e-10, atol=1e-12)
    with pytest.raises(DiffbenchError, match="reference features contain NaN"):
        reference_statistics(np.full((3, 2), np.nan, dtype=np.float32))
