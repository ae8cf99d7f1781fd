"""FID, KID, precision/recall and Inception Score from features, by torch-fidelity's own functions.

Nothing here re-implements the math: arrays are checked, handed to torch_fidelity.metric_* as
torch-fidelity hands them (torch tensors / numpy arrays of the features' own dtype), and the
results come back as plain Python floats. torch-fidelity's convention: input 1 = generated,
input 2 = reference (real).
"""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

from diffbench.errors import DiffbenchError

IS_NO_LOGITS = "the Inception weights have no logits (fc layer is NaN): IS unavailable"
IS_NONFINITE_LOGITS = "the Inception logits are not finite (NaN/inf weights?): IS unavailable"
DEFAULT_SEED = DEFAULTS["rng_seed"]  # torch-fidelity's default seed for KID subsets and IS shuffling


def _features(x: np.ndarray, what: str) -> np.ndarray:
    """A finite, floating N×D array (N >= 2), else DiffbenchError naming ``what``."""
    x = np.asarray(x)
    if x.ndim != 2 or len(x) < 2 or not np.issubdtype(x.dtype, np.floating):
        raise DiffbenchError(f"{what} features must be a float N×D array with N >= 2, got {x.dtype} {x.shape}")
    if not np.isfinite(x).all():
        raise DiffbenchError(f"{what} features contain NaN or inf")
    return x


def _pair(gen: np.ndarray, ref: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked generated/reference features as CPU tensors of one common float dtype."""
    gen, ref = _features(gen, "generated"), _features(ref, "reference")
    if gen.shape[1] != ref.shape[1]:
        raise DiffbenchError(f"generated and reference features differ in width: {gen.shape[1]} vs {ref.shape[1]}")
    dtype = np.result_type(gen.dtype, ref.dtype)
    return torch.from_numpy(gen.astype(dtype, copy=False)), torch.from_numpy(ref.astype(dtype, copy=False))


def fid_from_statistics(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between two Gaussians (torch-fidelity's ``fid_statistics_to_metric``)."""
    mu1, mu2, sigma1, sigma2 = (np.asarray(a) for a in (mu1, mu2, sigma1, sigma2))
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != mu2.shape or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise DiffbenchError(
            f"FID statistics do not match: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}"
        )
    mu_t, sigma_t = np.result_type(mu1, mu2), np.result_type(sigma1, sigma2)  # its asserts want equal dtypes
    stat1 = {"mu": mu1.astype(mu_t, copy=False), "sigma": sigma1.astype(sigma_t, copy=False)}
    stat2 = {"mu": mu2.astype(mu_t, copy=False), "sigma": sigma2.astype(sigma_t, copy=False)}
    return float(fid_statistics_to_metric(stat1, stat2, verbose=False)[KEY_METRIC_FID])


def fid_from_features(gen: np.ndarray, ref: np.ndarray) -> float:
    """FID between two feature sets (N×D each)."""
    s1, s2 = (fid_features_to_statistics(t) for t in _pair(gen, ref))
    return fid_from_statistics(s1["mu"], s1["sigma"], s2["mu"], s2["sigma"])


def kid_subset_size_for(subset_size: int, n_gen: int, n_ref: int) -> int:
    """KID subset size actually used: ``subset_size`` clipped to min(n_gen, n_ref); at least 2."""
    size = min(subset_size, n_gen, n_ref)
    if size < 2:
        raise DiffbenchError(
            f"KID needs subsets of at least 2 samples: kid_subset_size={subset_size}, "
            f"{n_gen} generated, {n_ref} reference"
        )
    return size


def kid_from_features(
    gen: np.ndarray, ref: np.ndarray, subset_size: int, subsets: int, seed: int = DEFAULT_SEED
) -> tuple[float, float]:
    """KID (mean, std over ``subsets`` random subsets), unbiased MMD² with the cubic polynomial kernel.

    ``subset_size`` is clipped to min(n_gen, n_ref) (see :func:`kid_subset_size_for`).
    """
    if subsets < 1:
        raise DiffbenchError(f"kid_subsets must be >= 1, got {subsets}")
    g, r = _pair(gen, ref)
    size = kid_subset_size_for(subset_size, len(g), len(r))
    out = kid_features_to_metric(g, r, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def precision_recall(gen: np.ndarray, ref: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al.) with k-NN balls of neighbourhood ``k``.

    Each set needs more than ``k`` points (torch-fidelity's kthvalue would fail otherwise). Uses
    torch-fidelity's row-blocked path (``save_cpu_ram``): the same distances and the same numbers as
    its default path, but memory bounded by 10,000 × N distances instead of three full N×N matrices.
    """
    g, r = _pair(gen, ref)
    if k < 1 or k >= min(len(g), len(r)):
        raise DiffbenchError(
            f"precision/recall neighbourhood k={k} needs 1 <= k < set size; got {len(g)} generated, {len(r)} reference"
        )
    out = prc_features_to_metric(g, r, prc_neighborhood=k, save_cpu_ram=True, verbose=False)
    return float(out[KEY_METRIC_PRECISION]), float(out[KEY_METRIC_RECALL])


def inception_score(
    logits: np.ndarray | None, splits: int = 10, seed: int = DEFAULT_SEED
) -> tuple[float | None, float | None, str | None]:
    """Inception Score (mean, std over ``splits``, reason None) or (None, None, reason) when unavailable.

    Like torch-fidelity, samples are shuffled with ``seed`` before being cut into splits.
    """
    if logits is None:
        return None, None, IS_NO_LOGITS
    logits = np.asarray(logits)
    if logits.ndim != 2 or not np.issubdtype(logits.dtype, np.floating):
        raise DiffbenchError(f"logits must be a float N×C array, got {logits.dtype} {logits.shape}")
    if not np.isfinite(logits).all():
        return None, None, IS_NONFINITE_LOGITS
    if not 1 <= splits <= len(logits):
        raise DiffbenchError(f"Inception Score splits={splits} needs 1 <= splits <= number of samples ({len(logits)})")
    out = isc_features_to_metric(torch.from_numpy(logits), splits=splits, shuffle=True, rng_seed=seed)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD]), None


def compute_all(
    gen: dict, ref: dict, *, kid_subset_size: int, kid_subsets: int, prc_k: int, seed: int, is_splits: int = 10
) -> dict:
    """Every metric from feature dicts ({"pool": ..., "logits": optional}) as one flat dict of plain values.

    ``kid_subset_size`` in the result is the size actually used (after clipping).
    """
    gen_pool, ref_pool = gen["pool"], ref["pool"]
    kid_mean, kid_std = kid_from_features(gen_pool, ref_pool, kid_subset_size, kid_subsets, seed)
    precision, recall = precision_recall(gen_pool, ref_pool, prc_k)
    is_mean, is_std, is_reason = inception_score(gen.get("logits"), is_splits, seed)
    return {
        "fid": fid_from_features(gen_pool, ref_pool),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subset_size": kid_subset_size_for(kid_subset_size, len(gen_pool), len(ref_pool)),
        "precision": precision,
        "recall": recall,
        "prc_k": int(prc_k),
        "inception_score_mean": is_mean,
        "inception_score_std": is_std,
        "inception_score_unavailable": is_reason,
    }
