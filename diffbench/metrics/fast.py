"""FID, KID and precision/recall on the metric device (CUDA when present), for whole sets and subsets.

Same definitions, same subset sampling and same distance routine as torch-fidelity
(:mod:`diffbench.metrics.fidelity` wraps its functions; tests/metrics/test_fast.py holds the two
equal), arranged so that the subsets the intervals need cost little:

* **FID** uses the exact identity tr sqrt(Σ_g Σ_r) = tr sqrt(S Σ_g S), S = Σ_r^{1/2} computed once,
  with S Σ_g S = ỸᵀỸ/(m−1), Ỹ the subset's centred features times S. The smaller of ỸᵀỸ and ỸỸᵀ goes
  through a symmetric ``eigvalsh`` in float64 (torch-fidelity: a non-symmetric d×d ``eigvals`` of
  Σ_g Σ_r on the CPU, ~10 s at d = 2048), negative rounding clipped to 0.
* **KID** draws its subsets exactly as torch-fidelity does (``np.random.RandomState(seed).choice``
  without replacement, generated then reference, per subset) and evaluates the unbiased MMD² of the
  cubic polynomial kernel in float64 on the device, from kernel matrices computed once per set. A
  subset's kernel sums are quadratic forms pᵀKq of its rows' count vectors, so S subsets cost one
  S×n by n×n product per matrix (dense float64 GEMM) instead of S gathers of m×m entries: the 5,000
  subsets of an interval at n = 10k moved ~120 GB through gathers, ~11 s per half-sample on 2 CPU cores.
* **Precision/recall** (Kynkäänniemi et al.) use torch-fidelity's blocked ``torch.cdist`` and
  ``kthvalue`` but keep every block on the device. The reference k-NN radii and each generated
  sample's "inside a reference ball" flag are computed once: precision of any subset is the mean of
  its flags; recall of a subset needs the subset's own radii and is recomputed.
"""

from __future__ import annotations

import numpy as np
import torch

from diffbench.errors import DiffbenchError
from diffbench.metrics.fidelity import DEFAULT_SEED, _features, kid_subset_size_for

BLOCK = 10000  # rows per cdist block, as torch-fidelity's prc_batch_size
KERNEL_BUDGET = 1 << 29  # KID kernel-matrix entries kept on the device (4 GiB in float64): 10k vs 10k fits
KID_ROWS_BUDGET = 1 << 25  # entries of the KID subsets' count vectors (and their products) per chunk: 256 MiB
FID_CHUNK = 10  # FID subsets whose matrices are decomposed in one call (10 × 2048² float64 = 320 MiB)


def metric_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or CUDA when torch sees a GPU, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _rows(idx: np.ndarray | None, n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device) if idx is None else torch.as_tensor(np.asarray(idx), device=device)


class FidStatistic:
    """FID of ``gen`` (or of subsets of its rows) against fixed reference statistics."""

    def __init__(self, gen: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray, device=None):
        gen = _features(gen, "generated")
        d = gen.shape[1]
        ref_mu, ref_sigma = np.asarray(ref_mu), np.asarray(ref_sigma)
        if ref_mu.shape != (d,) or ref_sigma.shape != (d, d):
            raise DiffbenchError(
                f"reference statistics do not match {d}-wide generated features: "
                f"ref_mu {ref_mu.shape}, ref_sigma {ref_sigma.shape}"
            )
        if not (np.isfinite(ref_mu).all() and np.isfinite(ref_sigma).all()):
            raise DiffbenchError("reference statistics (ref_mu / ref_sigma) contain NaN or inf")
        self.device = metric_device(device)
        f64 = {"dtype": torch.float64, "device": self.device}
        x = torch.as_tensor(gen, **f64)
        sigma_r = torch.as_tensor(ref_sigma, **f64)
        sigma_r = (sigma_r + sigma_r.T) / 2
        evals, evecs = torch.linalg.eigh(sigma_r)
        # Eigenvalues of Σ_r at rounding level (rank < d) are the zeros they are: only the r positive
        # directions are kept (S Σ_g S and its r×r form share their non-zero eigenvalues), so no
        # sqrt of rounding noise enters the trace.
        positive = evals > evals.max().clamp(min=0) * d * torch.finfo(torch.float64).eps
        half = evecs[:, positive] * evals[positive].sqrt()  # d×r
        self.n, self.d = x.shape
        self.rank = int(positive.sum())
        mu0 = x.mean(0)
        self.xc = x - mu0  # centred on the whole set's mean: subset means are small offsets from it
        self.z = self.xc @ half
        self.sq = (self.xc * self.xc).sum(1)
        self.dmu0 = mu0 - torch.as_tensor(ref_mu, **f64)
        self.tr_r = float(torch.trace(sigma_r))

    def fid(self, idx: np.ndarray | None = None, route: str = "auto") -> float:
        """FID of ``gen[idx]`` (``None``: all rows; repeated rows count with their multiplicity).

        ``route``: "auto" (the smaller matrix), "d" (ỸᵀỸ, r×r) or "n" (ỸỸᵀ over the distinct rows).
        """
        outside, gram = self._parts(idx, route)
        return float(outside - 2 * _trace_sqrt(gram[None])[0])

    def fid_many(self, subsets: list[np.ndarray], route: str = "auto") -> np.ndarray:
        """``fid(idx)`` of every subset, with one transfer to the host per ``FID_CHUNK`` subsets (the
        eigenvalues of equal-sized subsets' matrices in one batched call): the half-samples of an interval
        no longer wait for the device 150 times, which costs most when other processes share the GPU."""
        values = []
        for chunk in range(0, len(subsets), FID_CHUNK):
            parts = [self._parts(idx, route) for idx in subsets[chunk:chunk + FID_CHUNK]]
            shapes = {gram.shape for _, gram in parts}
            if len(shapes) == 1:
                sqrt = _trace_sqrt(torch.stack([gram for _, gram in parts]))
            else:  # subsets of different sizes: one call each
                sqrt = torch.cat([_trace_sqrt(gram[None]) for _, gram in parts])
            values.append(torch.stack([outside for outside, _ in parts]) - 2 * sqrt)
        return torch.cat(values).cpu().numpy() if values else np.zeros(0)

    def _parts(self, idx: np.ndarray | None, route: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(‖μ_g − μ_r‖² + tr Σ_g + tr Σ_r, S Σ_g S or its n-side form) of ``gen[idx]``, on the device."""
        if idx is None:
            rows, w, m = torch.arange(self.n, device=self.device), None, self.n
        else:
            counts = np.bincount(np.asarray(idx), minlength=self.n)
            keep = np.flatnonzero(counts)
            rows = torch.as_tensor(keep, device=self.device)
            w = torch.as_tensor(counts[keep], dtype=torch.float64, device=self.device)
            m = int(counts.sum())
        if m < 2:
            raise DiffbenchError(f"FID needs at least 2 samples, got {m}")
        if w is None:
            w = torch.ones(len(rows), dtype=torch.float64, device=self.device)
        delta = (w @ self.xc[rows]) / m
        diff = self.dmu0 + delta
        tr_g = ((w @ self.sq[rows]) - m * (delta @ delta)) / (m - 1)
        z = self.z[rows]
        y = (z - (w @ z) / m) * w.sqrt()[:, None]
        if route == "auto":
            route = "n" if len(rows) < self.rank else "d"
        if route not in ("d", "n"):
            raise DiffbenchError(f"route must be 'auto', 'd' or 'n', got {route!r}")
        gram = y @ y.T if route == "n" else y.T @ y
        return diff @ diff + tr_g + self.tr_r, gram / (m - 1)


def _trace_sqrt(grams: torch.Tensor) -> torch.Tensor:
    """tr sqrt of each symmetric positive semi-definite matrix of a B×k×k batch (negative rounding clipped)."""
    return torch.linalg.eigvalsh(grams).clamp(min=0).sqrt().sum(-1)


def reference_statistics(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of reference features in float64, as FID uses them."""
    ref64 = _features(ref, "reference").astype(np.float64)
    return ref64.mean(0), np.cov(ref64, rowvar=False)


def fid_fast(gen: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray, *, route: str = "auto", device=None) -> float:
    """FID of ``gen`` against (ref_mu, ref_sigma) by the symmetric identity (see the module docstring)."""
    return FidStatistic(gen, ref_mu, ref_sigma, device).fid(None, route)


class KidStatistic:
    """KID of ``gen`` (or of subsets of its rows) against ``ref``, torch-fidelity's estimator on the device.

    Where the three kernel matrices (gen×gen, gen×ref, ref×ref) fit ``kernel_budget`` entries, they are
    computed once and every subset's MMD² comes from quadratic forms of its rows' count vectors with them:
    the 50 half-samples × 100 subsets of an interval then cost three (5,000 × n) by (n × n) products instead of
    15,000 kernel matrices (at n = 10k, d = 2048: ~3 instead of ~63 TFLOP in float64). Larger sets evaluate
    each subset's kernels from its features."""

    def __init__(self, gen: np.ndarray, ref: np.ndarray, subset_size: int, subsets: int,
                 seed: int = DEFAULT_SEED, device=None, kernel_budget: int = KERNEL_BUDGET):
        if subsets < 1:
            raise DiffbenchError(f"kid_subsets must be >= 1, got {subsets}")
        self.device = metric_device(device)
        self.gen = torch.as_tensor(_features(gen, "generated"), dtype=torch.float64, device=self.device)
        self.ref = torch.as_tensor(_features(ref, "reference"), dtype=torch.float64, device=self.device)
        if self.gen.shape[1] != self.ref.shape[1]:
            raise DiffbenchError(
                f"generated and reference features differ in width: {self.gen.shape[1]} vs {self.ref.shape[1]}"
            )
        self.subset_size, self.subsets, self.seed = subset_size, subsets, seed
        kid_subset_size_for(subset_size, len(self.gen), len(self.ref))  # fails early on too small a set
        n_g, n_r = len(self.gen), len(self.ref)
        self.kernels = None
        if n_g * n_g + n_g * n_r + n_r * n_r <= kernel_budget:
            self.kernels = (self._kernel(self.gen, self.gen), self._kernel(self.gen, self.ref),
                            self._kernel(self.ref, self.ref))

    def _kernel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The cubic polynomial kernel (x·y / d + 1)³ of every pair."""
        return (x @ y.T * (1.0 / x.shape[1]) + 1) ** 3

    def _mmd2(self, g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Unbiased MMD² of gen[g] vs ref[r] for S subsets at once (g, r: S×m row indices)."""
        m = g.shape[1]
        if self.kernels is None:
            return torch.stack([self._mmd2_from_features(self.gen[gi], self.ref[ri]) for gi, ri in zip(g, r)])
        k_gg, k_gr, k_rr = self.kernels
        chunk = max(1, KID_ROWS_BUDGET // max(len(k_gg), len(k_rr)))
        values = []
        # sets of one size share their reference draws (``_draws``): each distinct draw's sum is computed once
        r_distinct, r_index = torch.unique(r, dim=0, return_inverse=True)
        within_r = torch.cat([_quadratic(q, k_rr, q) - q @ k_rr.diagonal()
                              for q in (_counts(rs, len(k_rr)) for rs in r_distinct.split(chunk))])[r_index]
        for gs, rs, wr in zip(g.split(chunk), r.split(chunk), within_r.split(chunk)):
            p, q = _counts(gs, len(k_gg)), _counts(rs, len(k_rr))
            within = _quadratic(p, k_gg, p) - p @ k_gg.diagonal() + wr
            values.append(within / (m * (m - 1)) - 2 * _quadratic(p, k_gr, q) / (m * m))
        return torch.cat(values)

    def _mmd2_from_features(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k_xx, k_yy, k_xy = self._kernel(x, x), self._kernel(y, y), self._kernel(x, y)
        m = x.shape[0]
        within = (k_xx.sum() - k_xx.diagonal().sum()) + (k_yy.sum() - k_yy.diagonal().sum())
        return within / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)

    def kid(self, idx: np.ndarray | None = None) -> tuple[float, float]:
        """(mean, std) of the unbiased MMD² over the subsets, for ``gen[idx]`` (``None``: all rows)."""
        rows = np.arange(len(self.gen)) if idx is None else np.asarray(idx)
        values = self._mmd2(*self._draws([rows])).cpu().numpy()
        return float(np.mean(values)), float(np.std(values))

    def kid_many(self, subsets: list[np.ndarray]) -> np.ndarray:
        """The KID mean of ``gen[idx]`` for every ``idx`` of ``subsets``, with one transfer to the host."""
        if not subsets:
            return np.zeros(0)
        values = self._mmd2(*self._draws([np.asarray(idx) for idx in subsets]))
        return values.reshape(len(subsets), self.subsets).mean(1).cpu().numpy()

    def _draws(self, row_sets: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """The KID subsets of each row set, drawn as torch-fidelity draws them (a fresh
        ``RandomState(seed)`` per set: generated then reference per subset), as (S·subsets)×size row indices
        into gen and ref. Sets of one size share their draws."""
        g_all, r_all, drawn = [], [], {}
        for rows in row_sets:
            size = kid_subset_size_for(self.subset_size, len(rows), len(self.ref))
            if len(rows) not in drawn:
                rng = np.random.RandomState(self.seed)
                pairs = [(rng.choice(len(rows), size, replace=False), rng.choice(len(self.ref), size, replace=False))
                         for _ in range(self.subsets)]
                drawn[len(rows)] = (np.stack([g for g, _ in pairs]), np.stack([r for _, r in pairs]))
            g, r = drawn[len(rows)]
            g_all.append(rows[g])
            r_all.append(r)
        sizes = {g.shape[1] for g in g_all}
        if len(sizes) > 1:
            raise DiffbenchError(f"KID of several subsets needs one subset size, got {sorted(sizes)}")
        return (torch.as_tensor(np.concatenate(g_all), device=self.device),
                torch.as_tensor(np.concatenate(r_all), device=self.device))


def _counts(rows: torch.Tensor, n: int) -> torch.Tensor:
    """S×n float64: how often each of n rows occurs in each of S index sets (rows: S×m)."""
    counts = torch.zeros(len(rows), n, dtype=torch.float64, device=rows.device)
    return counts.scatter_add_(1, rows, torch.ones(rows.shape, dtype=torch.float64, device=rows.device))


def _quadratic(p: torch.Tensor, kernel: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per subset s: p[s]ᵀ kernel q[s], the sum of kernel[a][:, b] over the rows a, b that p[s], q[s] count."""
    return ((p @ kernel) * q).sum(1)


def _kth_radius(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each point to its k-th nearest other point (torch-fidelity's kthvalue(k + 1))."""
    return torch.cat([torch.cdist(rows, points).kthvalue(k + 1, dim=1).values for rows in points.split(BLOCK)])


def _inside_any_ball(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Per query: is it within some centre's radius (distance <= radius)?"""
    return torch.cat([(torch.cdist(rows, centres) <= radii).any(dim=1) for rows in queries.split(BLOCK)])


class PrecisionRecallStatistic:
    """Improved precision/recall of ``gen`` (or subsets of its rows) against ``ref`` with k-NN balls."""

    def __init__(self, gen: np.ndarray, ref: np.ndarray, k: int, device=None):
        gen, ref = _features(gen, "generated"), _features(ref, "reference")
        if gen.shape[1] != ref.shape[1]:
            raise DiffbenchError(f"generated and reference features differ in width: {gen.shape[1]} vs {ref.shape[1]}")
        if k < 1 or k >= min(len(gen), len(ref)):
            raise DiffbenchError(
                f"precision/recall neighbourhood k={k} needs 1 <= k < set size; got {len(gen)} generated, "
                f"{len(ref)} reference"
            )
        self.device, self.k = metric_device(device), k
        dtype = torch.from_numpy(np.empty(0, np.result_type(gen.dtype, ref.dtype))).dtype
        self.gen = torch.as_tensor(gen, dtype=dtype, device=self.device)
        self.ref = torch.as_tensor(ref, dtype=dtype, device=self.device)
        self.in_reference = _inside_any_ball(self.gen, self.ref, _kth_radius(self.ref, k)).double()

    def precision(self, idx: np.ndarray | None = None) -> float:
        """Share of generated samples (of ``gen[idx]``) inside some reference ball."""
        return float(self._precision(idx))

    def recall(self, idx: np.ndarray | None = None) -> float:
        """Share of reference samples inside some ball of the generated set ``gen[idx]``."""
        return float(self._recall(idx))

    def precision_many(self, subsets: list[np.ndarray]) -> np.ndarray:
        """``precision(idx)`` of every subset, with one transfer to the host."""
        return _to_host([self._precision(idx) for idx in subsets])

    def recall_many(self, subsets: list[np.ndarray]) -> np.ndarray:
        """``recall(idx)`` of every subset, with one transfer to the host."""
        return _to_host([self._recall(idx) for idx in subsets])

    def _precision(self, idx: np.ndarray | None) -> torch.Tensor:
        return self.in_reference[_rows(idx, len(self.gen), self.device)].mean()

    def _recall(self, idx: np.ndarray | None) -> torch.Tensor:
        gen = self.gen if idx is None else self.gen[_rows(idx, len(self.gen), self.device)]
        if self.k >= len(gen):
            raise DiffbenchError(f"recall with k={self.k} needs more than {self.k} generated samples, got {len(gen)}")
        return _inside_any_ball(self.ref, gen, _kth_radius(gen, self.k)).double().mean()


def _to_host(values: list[torch.Tensor]) -> np.ndarray:
    """Device scalars as one float64 array (one transfer)."""
    return torch.stack(values).double().cpu().numpy() if values else np.zeros(0)
