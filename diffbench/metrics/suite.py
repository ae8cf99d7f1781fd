"""The fidelity metric suite on one feature set: point values and 95% intervals, as one flat dict.

FID, KID, precision/recall (any features: Inception pool features, a reference classifier's
penultimate features) and Inception Score (any logits) against fixed reference features. Points use
the device implementations of :mod:`diffbench.metrics.fast` (equal to torch-fidelity's, tested);
intervals come from the half-sample jackknife of :mod:`diffbench.metrics.intervals`, every metric on
the same B halves, each metric's B values computed on the device and brought to the host at once. A
metric ``m`` comes with ``m_lo`` and ``m_hi``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffbench.metrics.fast import FidStatistic, KidStatistic, PrecisionRecallStatistic, reference_statistics
from diffbench.metrics.fidelity import DEFAULT_SEED, inception_score, kid_subset_size_for
from diffbench.metrics.intervals import METHOD, batched_interval, half_sample_interval, half_samples


@dataclass(frozen=True)
class SuiteConfig:
    """What the suite computes: KID subsets, the k of precision/recall, IS splits, interval resamples."""

    kid_subset_size: int
    kid_subsets: int
    prc_k: int
    resamples: int = 50
    level: float = 0.95
    seed: int = DEFAULT_SEED
    is_splits: int = 10

    @classmethod
    def from_metrics(cls, metrics: dict, seed: int) -> "SuiteConfig":
        """From params.yaml's ``metrics`` section."""
        return cls(
            kid_subset_size=metrics["kid_subset_size"], kid_subsets=metrics["kid_subsets"], prc_k=metrics["prc_k"],
            resamples=metrics["interval_resamples"], level=metrics["interval_level"], seed=seed,
        )


# Where a metric's values live: a jackknife interval (point ± t·√v) is clipped to them.
RANGES = {"precision": (0.0, 1.0), "recall": (0.0, 1.0), "inception_score_mean": (1.0, np.inf)}


def _with_interval(out: dict, key: str, point_lo_hi: tuple[float, float, float]) -> None:
    low, high = RANGES.get(key, (-np.inf, np.inf))
    point, lo, hi = point_lo_hi
    out[key], out[f"{key}_lo"], out[f"{key}_hi"] = point, float(max(lo, low)), float(min(hi, high))


def fidelity_metrics(gen: dict, ref: dict, config: SuiteConfig, device=None) -> dict:
    """Every metric of generated features ``gen`` vs ``ref`` ({"pool": N×D, "logits": optional N×K}).

    Flat dict: fid, kid_mean (+ kid_std over subsets), precision, recall, inception_score_mean
    (None with ``inception_score_unavailable`` when there are no logits), each with _lo/_hi.
    """
    gen_pool, ref_pool = gen["pool"], ref["pool"]
    n = len(gen_pool)
    subsets = half_samples(n, config.resamples, config.seed)
    out: dict = {}
    fid = FidStatistic(gen_pool, *reference_statistics(ref_pool), device=device)
    _with_interval(out, "fid", batched_interval(fid.fid(), fid.fid_many(subsets), n, config.level))
    kid = KidStatistic(gen_pool, ref_pool, config.kid_subset_size, config.kid_subsets, config.seed, device)
    kid_mean, out["kid_std"] = kid.kid()
    _with_interval(out, "kid_mean", batched_interval(kid_mean, kid.kid_many(subsets), n, config.level))
    out["kid_subset_size"] = kid_subset_size_for(config.kid_subset_size, n, len(ref_pool))
    prc = PrecisionRecallStatistic(gen_pool, ref_pool, config.prc_k, device)
    _with_interval(out, "precision", batched_interval(prc.precision(), prc.precision_many(subsets), n, config.level))
    _with_interval(out, "recall", batched_interval(prc.recall(), prc.recall_many(subsets), n, config.level))
    out["prc_k"] = int(config.prc_k)
    out.update(inception_score_metrics(gen.get("logits"), subsets, config))
    out["interval_method"] = METHOD.format(resamples=config.resamples)
    out["interval_level"] = config.level
    return out


def inception_score_metrics(logits: np.ndarray | None, subsets: list[np.ndarray], config: SuiteConfig) -> dict:
    """IS mean/std over splits with a half-sample interval, or None values and the reason it is unavailable.

    Splits: ``config.is_splits``, fewer where the set (or a half) has fewer samples than that.
    """
    n = 0 if logits is None else len(logits)
    splits = max(1, min(config.is_splits, n))
    mean, std, reason = inception_score(logits, splits, config.seed)
    out = {"inception_score_mean": mean, "inception_score_std": std, "inception_score_unavailable": reason,
           "inception_score_mean_lo": None, "inception_score_mean_hi": None,
           "inception_score_splits": None if reason else splits}
    if reason is None:
        half_splits = min(splits, len(subsets[0]))

        def statistic(idx):
            return mean if idx is None else inception_score(logits[idx], half_splits, config.seed)[0]

        _with_interval(out, "inception_score_mean", half_sample_interval(statistic, n, subsets, config.level))
    return out
