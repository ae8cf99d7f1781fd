"""diffbench.metrics.intervals: half-samples, the jackknife formula, mean and Wilson intervals, and coverage.

The coverage test draws synthetic features with a known answer (the metric's expectation at this n,
from 1,500 independent draws), builds the 95% interval on 200 fresh draws and counts how often it
covers that answer: about 95% of the time for every metric, within a binomial tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from diffbench.errors import DiffbenchError
from diffbench.metrics.fast import (
    FidStatistic,
    KidStatistic,
    PrecisionRecallStatistic,
    reference_statistics,
)
from diffbench.metrics.intervals import (
    half_sample_interval,
    half_samples,
    jackknife_interval,
    mean_interval,
    wilson_interval,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_half_samples_are_seeded_halves_without_replacement():
    subsets = half_samples(11, 5, seed=3)
    assert len(subsets) == 5
    for idx in subsets:
        assert len(idx) == 5 and len(np.unique(idx)) == 5 and idx.min() >= 0 and idx.max() < 11
        assert np.all(np.diff(idx) > 0)
    assert all(np.array_equal(a, b) for a, b in zip(subsets, half_samples(11, 5, seed=3)))
    assert not all(np.array_equal(a, b) for a, b in zip(subsets, half_samples(11, 5, seed=4)))


@pytest.mark.parametrize("n, resamples, message", [(3, 5, "at least 4 samples"), (10, 1, "resamples must be"),
                                                    (10, True, "resamples must be")])
def test_half_samples_bad_arguments(n, resamples, message):
    with pytest.raises(DiffbenchError, match=message):
        half_samples(n, resamples, 0)


def test_jackknife_interval_by_hand():
    values = np.array([1.0, 2.0, 4.0, 5.0])
    n = 9  # r = 4 kept, d = 5 deleted
    v = 4 / 5 * np.mean((values - 3.0) ** 2)
    half_width = stats.t.ppf(0.975, 3) * np.sqrt(v)
    assert jackknife_interval(10.0, values, n) == pytest.approx((10 - half_width, 10 + half_width))
    lo90, hi90 = jackknife_interval(10.0, values, n, level=0.9)
    assert 10 - half_width < lo90 < 10 < hi90 < 10 + half_width
    with pytest.raises(DiffbenchError, match="0 < level < 1"):
        jackknife_interval(1.0, values, n, level=1.0)
    with pytest.raises(DiffbenchError, match=">= 2 finite"):
        jackknife_interval(1.0, np.array([1.0, np.nan]), n)


def test_half_sample_interval_of_a_mean_estimates_its_standard_error():
    """For a sample mean the jackknife variance approaches s²/n: the interval matches the t-interval."""
    x = np.random.default_rng(0).normal(size=400)
    point, lo, hi = half_sample_interval(lambda idx: float(x.mean() if idx is None else x[idx].mean()), 400,
                                         half_samples(400, 400, seed=1))
    _, t_lo, t_hi = mean_interval(x)
    assert point == pytest.approx(x.mean())
    assert (hi - lo) == pytest.approx(t_hi - t_lo, rel=0.1)


def test_mean_interval_by_hand():
    x = np.array([1.0, 2.0, 3.0, 6.0])
    half_width = stats.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert mean_interval(x) == pytest.approx((3.0, 3.0 - half_width, 3.0 + half_width))
    with pytest.raises(DiffbenchError, match=">= 2 finite values"):
        mean_interval(np.array([1.0]))


def test_wilson_interval_by_hand():
    # 8 of 10 at 95%: the textbook Wilson interval is (0.4902, 0.9433).
    p, lo, hi = wilson_interval(8, 10)
    assert p == 0.8 and lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 5)[1] == 0.0 and wilson_interval(5, 5)[2] == 1.0
    with pytest.raises(DiffbenchError, match="0 <= successes <= n"):
        wilson_interval(6, 5)


# --------------------------------------------------------------------------- coverage

D, N, N_REF, SCALE = 8, 200, 400, np.linspace(0.7, 1.3, 8)
REFERENCE = np.random.default_rng(123).normal(size=(N_REF, D))
MU_R, SIGMA_R = reference_statistics(REFERENCE)
NAMES = ("fid", "kid", "precision", "recall")


def draw(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(N, D)) * SCALE + 0.15


def statistics(gen: np.ndarray) -> list:
    fid = FidStatistic(gen, MU_R, SIGMA_R, "cpu")
    kid = KidStatistic(gen, REFERENCE, 50, 5, seed=0, device="cpu")
    prc = PrecisionRecallStatistic(gen, REFERENCE, 3, "cpu")
    return [fid.fid, lambda idx: kid.kid(idx)[0], prc.precision, prc.recall]


@pytest.mark.slow
def test_intervals_cover_the_known_answer_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    truth = np.mean([[f(None) for f in statistics(draw(rng))] for _ in range(1500)], axis=0)
    reps = 200
    covered = np.zeros(len(NAMES))
    for rep in range(reps):
        subsets = half_samples(N, 20, seed=rep)
        for i, statistic in enumerate(statistics(draw(rng))):
            _, lo, hi = half_sample_interval(statistic, N, subsets)
            covered[i] += lo <= truth[i] <= hi
    rate = dict(zip(NAMES, covered / reps))
    # 200 reps: a true 95% rate lands in [0.89, 0.99] with probability > 0.999.
    assert all(0.89 <= r <= 0.99 for r in rate.values()), rate
