"""Independent implementations of the metrics, written from the papers' definitions: the oracles
that diffbench's torch-fidelity wrappers (test_fidelity.py) and device implementations (test_fast.py)
are compared with."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg


def fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """FID with the matrix square root from scipy (the pytorch-fid / TTUR formulation)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² (KID) with k(a, b) = (a·b/d + 1)^3, written as explicit pair sums."""
    m, d = x.shape
    k = lambda a, b: (float(a @ b) / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def knn_radii(points: np.ndarray, k: int) -> list[float]:
    """Distance from each point to its k-th nearest *other* point (duplicates count as neighbours at 0)."""
    radii = []
    for i, p in enumerate(points):
        others = sorted(math.dist(p, q) for j, q in enumerate(points) if j != i)
        radii.append(others[k - 1])
    return radii


def coverage(queries: np.ndarray, centres: np.ndarray, radii: list[float]) -> float:
    """Fraction of ``queries`` inside at least one closed ball (centre, radius)."""
    inside = [any(math.dist(q, c) <= r for c, r in zip(centres, radii)) for q in queries]
    return sum(inside) / len(inside)


def prc_brute(gen: np.ndarray, ref: np.ndarray, k: int) -> tuple[float, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019) by brute force.

    Rounded to float32 as torch-fidelity returns them (it averages a float32 0/1 tensor): 0.675
    comes back as 0.675000011920929. For counts below 2**24 the float32 mean of 0/1 values is the
    correctly rounded count/n, which is what np.float32(count/n) gives too.
    """
    precision, recall = coverage(gen, ref, knn_radii(ref, k)), coverage(ref, gen, knn_radii(gen, k))
    return float(np.float32(precision)), float(np.float32(recall))


def is_by_hand(logits: np.ndarray, splits: int, seed: int) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per split, mean and population std over splits.

    torch-fidelity shuffles the samples with RandomState(seed).permutation before splitting and cuts
    split i as rows [i*N//splits, (i+1)*N//splits).
    """
    n = len(logits)
    logits = logits[np.random.RandomState(seed).permutation(n)]
    scores = []
    for i in range(splits):
        chunk = logits[i * n // splits : (i + 1) * n // splits]
        p = np.exp(chunk - chunk.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p_y = p.mean(0)
        kl = (p * (np.log(p) - np.log(p_y))).sum(1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def gaussian(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """n×d samples of one fixed full-covariance normal per d (so sqrtm has real work to do), moved/scaled."""
    mix = np.eye(d) + 0.3 * np.random.default_rng(d).standard_normal((d, d)) / math.sqrt(d)
    return np.random.default_rng(seed).standard_normal((n, d)) @ mix * scale + shift


def lattice(n: int, d: int, seed: int) -> np.ndarray:
    """Points on a coarse integer grid: many exactly tied distances and exact duplicates."""
    points = np.random.default_rng(seed).integers(0, 3, (n, d)).astype(np.float64)
    points[-3:] = points[:3]  # guaranteed duplicates
    return points
