"""Tests for diffbench.elbo (the variational bound in bits/dim) and the elbo stage."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from diffbench.checkpoint import MODEL_FORMAT, save_atomic
from diffbench.diffusion import NoiseSchedule, q_sample
from diffbench.elbo_settings import ElboSettings
from diffbench.elbo import (
    ElboTerms,
    ReverseProcess,
    bound,
    decoder_nll,
    discretized_gaussian_log_likelihood,
    evaluate,
    normal_kl,
    posterior_kl,
    prior_kl,
    strata,
    summarize,
    xt_noise,
)
from diffbench.errors import DiffbenchError, ParamsError
from diffbench.generation import LoadedModel
from diffbench.training import to_model_space
from tests.conftest import gaussian_eps

ROOT = Path(__file__).resolve().parents[1]
GRID = torch.arange(256, dtype=torch.float64) / 127.5 - 1
SETTINGS = ElboSettings(split="test", n_images=6, timesteps_per_image=3, batch_size=6, variance="large",
                        clip_x0=True, conditional=False, bf16=False)


def random_images(n: int, size: int = 4, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, size, size, channels), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def exact_by_terms(eps_fn, schedule: NoiseSchedule, images: torch.Tensor, seeds: torch.Tensor, variance: str) -> torch.Tensor:
    """Reference: L_T + L_0 + Σ over every index t ≥ 1, each term from the public functions (nats)."""
    process = ReverseProcess.build(schedule, variance, "cpu")
    x0 = to_model_space(images).double()
    total = prior_kl(process, x0)
    for step in range(schedule.timesteps):
        t = torch.full_like(seeds, step)
        x_t = q_sample(schedule, x0.float(), t, xt_noise(seeds, t, schedule.timesteps, tuple(x0.shape[1:])))
        eps, x_t = eps_fn(x_t, t).double(), x_t.double()
        term = decoder_nll(process, x0, x_t, eps, True) if step == 0 else posterior_kl(process, x0, x_t, t, eps, True)
        total = total + term
    return total / (x0[0].numel() * math.log(2))


# --------------------------------------------------------------------------- the Gaussian pieces


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    m1, m2, lv1, lv2 = (torch.randn(50, generator=g, dtype=torch.float64) * 2 for _ in range(4))
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp())
    )
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mean", [-1.5, -1.0, -0.3, 0.0, 0.51, 1.0, 2.0])
@pytest.mark.parametrize("log_scale", [-12.0, -6.0, -3.0, 0.0, 3.0])
def test_discretized_decoder_sums_to_one_over_256_values(mean, log_scale):
    means = torch.full_like(GRID, mean)
    log_p = discretized_gaussian_log_likelihood(GRID, means, torch.full_like(GRID, log_scale))
    assert torch.isfinite(log_p).all() and (log_p <= 0).all()
    assert abs(torch.logsumexp(log_p, 0).item()) < 1e-10


def test_discretized_decoder_bin_masses():
    sigma = 0.01
    mean = torch.tensor([0.0, 0.0, -1.0, 1.0], dtype=torch.float64)
    x = torch.tensor([130 / 127.5 - 1, 0.0, -1.0, 1.0], dtype=torch.float64)  # bins off and on the mean, both edges
    log_p = discretized_gaussian_log_likelihood(x, mean, torch.full_like(x, math.log(sigma)))
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))
    h = torch.tensor(1 / 255, dtype=torch.float64)
    expected = torch.stack([
        (normal.cdf(x[0] + h) - normal.cdf(x[0] - h)).log(), (normal.cdf(h) - normal.cdf(-h)).log(),
        normal.cdf(h).log(), normal.cdf(h).log(),
    ])
    torch.testing.assert_close(log_p, expected, rtol=1e-10, atol=1e-12)


def test_deep_tail_masses_stay_finite():
    # A pixel 1.5 away from a mean of scale 1e-3: Φ differences underflow; the log mass must not.
    x = torch.tensor([0.5, -0.5], dtype=torch.float64)
    log_p = discretized_gaussian_log_likelihood(x, -x, torch.full_like(x, math.log(1e-3)))
    assert torch.isfinite(log_p).all() and (log_p < -1e5).all()
    torch.testing.assert_close(log_p[0], log_p[1])


# --------------------------------------------------------------------------- exact and Monte Carlo bound


def test_k_equal_t_minus_one_is_the_exact_sum():
    schedule = NoiseSchedule.named("linear", 12)
    eps_fn = gaussian_eps(schedule, 0.0, 0.5)
    images, seeds = random_images(5), torch.arange(5) + 3
    exact = bound(eps_fn, schedule, images, seeds, None, "small")
    full = bound(eps_fn, schedule, images, seeds, 11, "small")
    np.testing.assert_array_equal(exact.total, full.total)
    reference = exact_by_terms(eps_fn, schedule, images, seeds, "small").numpy()
    np.testing.assert_allclose(exact.total, reference, rtol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_stratified_estimate_is_unbiased(k):
    """One image, many seeds: E_t[estimate − exact] = 0 for each seed (same x_t noise per index)."""
    schedule = NoiseSchedule.named("linear", 16)
    eps_fn = gaussian_eps(schedule, 0.2, 0.3)
    n = 600
    images, seeds = random_images(1).expand(n, -1, -1, -1).contiguous(), torch.arange(n)
    exact = bound(eps_fn, schedule, images, seeds, None).middle
    estimate = bound(eps_fn, schedule, images, seeds, k).middle
    diff = estimate - exact
    assert abs(diff.mean()) < 4 * diff.std(ddof=1) / math.sqrt(n)
    assert diff.std() > 0  # the draws do vary
    assert abs(estimate.mean() - exact.mean()) < 4 * estimate.std(ddof=1) / math.sqrt(n)


def test_strata_cover_the_middle_indices_once():
    assert strata(16, 5).tolist() == [1, 4, 7, 10, 13, 16]
    assert strata(1000, 50)[[0, -1]].tolist() == [1, 1000]
    assert np.diff(strata(1000, 999)).tolist() == [1] * 999


def test_point_mass_with_its_optimal_eps_has_no_middle_terms():
    """Data = one image x0: ε* = (x_t − √ᾱ x0)/√(1−ᾱ) makes p_θ the true posterior under 'small' variance."""
    schedule = NoiseSchedule.named("linear", 20)
    images = random_images(1, size=3, channels=3).expand(4, -1, -1, -1).contiguous()
    images[0, 0, 0, 0], images[0, 0, 1, 0] = 0, 255  # edge bins too
    x0 = to_model_space(images).double()
    alpha_bar = torch.tensor(schedule.alpha_bar, dtype=torch.float64)

    def eps_star(x_t, t):
        a = alpha_bar[t].reshape(-1, 1, 1, 1)
        return (x_t.double() - a.sqrt() * x0) / (1 - a).sqrt()

    small = bound(eps_star, schedule, images, torch.arange(4), None, "small")
    assert np.abs(small.middle).max() < 1e-9
    np.testing.assert_allclose(small.total, small.prior + small.decoder, rtol=0, atol=1e-9)
    # L_0: Gaussian of variance β̃_2 centred on the pixel; edge bins open-ended.
    betas = schedule.betas
    sigma = math.sqrt(betas[1] * (1 - schedule.alpha_bar[0]) / (1 - schedule.alpha_bar[1]))
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))
    h = torch.tensor(1 / 255, dtype=torch.float64)
    interior, edge = -torch.log(normal.cdf(h) - normal.cdf(-h)).item(), -torch.log(normal.cdf(h)).item()
    edges = ((images == 0) | (images == 255)).flatten(1).sum(1).numpy()
    expected = (edges * edge + (27 - edges) * interior) / (27 * math.log(2))
    np.testing.assert_allclose(small.decoder, expected, rtol=1e-9)
    large = bound(eps_star, schedule, images, torch.arange(4), None, "large")
    assert (large.middle > 1e-3).all()  # β_t ≠ β̃_t: the KL terms no longer vanish
    np.testing.assert_allclose(large.decoder, small.decoder, rtol=1e-12)  # both use β̃_2 at the first step


def test_bound_is_independent_of_batch_size():
    schedule = NoiseSchedule.named("cosine", 10)
    eps_fn = gaussian_eps(schedule, 0.0, 0.5)
    images, seeds = random_images(7), torch.arange(7)
    whole = bound(eps_fn, schedule, images, seeds, 4).total
    parts = np.concatenate([bound(eps_fn, schedule, images[i:i + 3], seeds[i:i + 3], 4).total for i in range(0, 7, 3)])
    np.testing.assert_array_equal(whole, parts)


# --------------------------------------------------------------------------- a model on a split


@pytest.fixture
def loaded(tiny_unet) -> LoadedModel:
    return LoadedModel(net=tiny_unet, schedule=NoiseSchedule.named("linear", 10), file={})


def test_evaluate_is_independent_of_batch_size_and_rank(loaded):
    images, labels = random_images(6, size=8).numpy(), np.arange(6) % 10
    whole = evaluate(loaded, images, labels, SETTINGS)
    small = evaluate(loaded, images, labels, dataclasses.replace(SETTINGS, batch_size=4))
    np.testing.assert_allclose(whole.terms.total, small.terms.total, rtol=1e-6)
    shards = [evaluate(loaded, images, labels, SETTINGS, rank=r, world_size=4) for r in range(4)]
    order = np.argsort(np.concatenate([s.seeds for s in shards]))
    merged = np.concatenate([s.terms.total for s in shards])[order]
    np.testing.assert_allclose(whole.terms.total, merged, rtol=1e-6)
    conditional = evaluate(loaded, images, labels, dataclasses.replace(SETTINGS, conditional=True))
    assert not np.allclose(whole.terms.middle, conditional.terms.middle)  # the label reaches the network


def test_summary_interval():
    values = np.array([3.0, 3.5, 4.0, 4.5])
    zero = np.zeros(4)
    summary = summarize(ElboTerms(values, zero, zero))
    half = 3.182446305284263 * values.std(ddof=1) / 2  # t(0.975, 3)
    assert summary["bpd"] == pytest.approx(3.75)
    assert (summary["bpd_lo"], summary["bpd_hi"]) == pytest.approx((3.75 - half, 3.75 + half))
    assert summary["L_T"] == pytest.approx(3.75) and summary["L_0"] == 0


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"k": 0}, "timesteps_per_image: must be an integer in 1..9 (T-1)"),
        ({"k": 10}, "timesteps_per_image: must be an integer in 1..9 (T-1) or null (exact), got 10"),
        ({"k": 2.0}, "timesteps_per_image"),
        ({"variance": "medium"}, "variance: must be one of large, small, got 'medium'"),
        ({"images": random_images(2).float()}, "images: must be uint8 N x H x W x (1|3), got torch.float32"),
        ({"images": torch.zeros(2, 4, 4, 2, dtype=torch.uint8)}, "images: must be uint8"),
        ({"seeds": torch.arange(3)}, "seeds: must be int64 with one seed per image"),
        ({"seeds": torch.tensor([0, 2**31])}, "seeds: must be in 0.."),
    ],
)
def test_bad_arguments_fail_in_one_line(change, expected):
    schedule = NoiseSchedule.named("linear", 10)
    args = {"images": random_images(2), "seeds": torch.arange(2), "k": 3, "variance": "large"} | change
    with pytest.raises(DiffbenchError) as info:
        bound(gaussian_eps(schedule, 0, 1), schedule, args["images"], args["seeds"], args["k"], args["variance"])
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_evaluate_rejects_images_the_model_cannot_take(loaded):
    labels = np.zeros(6, dtype=np.int64)
    with pytest.raises(DiffbenchError, match=r"images: the model needs uint8 N x 8 x 8 x 1"):
        evaluate(loaded, random_images(6, size=4).numpy(), labels, SETTINGS)
    with pytest.raises(ParamsError, match="elbo.n_images: 6 > the 5 images of the test split"):
        evaluate(loaded, random_images(5, size=8).numpy(), labels[:5], SETTINGS)


def params_section(**change) -> dict:
    return dataclasses.asdict(SETTINGS) | change


@pytest.mark.parametrize(
    "section, expected",
    [
        (None, "elbo: missing section"),
        (params_section(timesteps_per_image=100), "elbo.timesteps_per_image: must be an integer in 1..99 (T-1)"),
        (params_section(variance="big"), "elbo.variance: must be one of large, small"),
        (params_section(split="val"), "elbo.split: must be one of train, test"),
        (params_section(n_images=0), "elbo.n_images: must be >= 1"),
        (params_section(batch_size=2.5), "elbo.batch_size: must be int"),
        (params_section(bf16="yes"), "elbo.bf16: must be bool"),
        (params_section(extra=1), "elbo: unknown key(s) ['extra']"),
        ({k: v for k, v in params_section().items() if k != "timesteps_per_image"}, "elbo.timesteps_per_image: missing"),
    ],
)
def test_params_errors_name_the_field(section, expected):
    with pytest.raises(ParamsError) as info:
        ElboSettings.from_params(section, 100)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_params_accept_null_k_for_the_exact_bound():
    assert ElboSettings.from_params(params_section(timesteps_per_image=None), 100).timesteps_per_image is None


# --------------------------------------------------------------------------- the stage


@pytest.fixture
def stage_dir(tmp_path, monkeypatch, tiny_unet):
    """A quick-profile params file with an elbo section, a tiny 8x8 split and an untrained model."""
    params = yaml.safe_load((ROOT / "profiles" / "quick" / "params.yaml").read_text())
    params["elbo"] = params_section(timesteps_per_image=4, n_images=5, batch_size=3)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    split = tmp_path / "data" / "mnist" / "test.npz"
    split.parent.mkdir(parents=True)
    np.savez(split, images=random_images(7, size=8).numpy(), labels=np.arange(7, dtype=np.int64) % 10,
             class_names=np.array([str(i) for i in range(10)]))
    save_atomic({"format": MODEL_FORMAT, "unet": dataclasses.asdict(tiny_unet.config), "schedule": "cosine",
                 "timesteps": 100, "ema": tiny_unet.state_dict(), "step": 0},
                tmp_path / "reference_models" / "mnist-cosine" / "model.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIFFBENCH_DEVICE", "cpu")
    return tmp_path


def test_stage_writes_the_bound(stage_dir):
    from stages import elbo as stage

    stage.main(["mnist", "cosine"])
    record = json.loads((stage_dir / "results" / "mnist-cosine" / "elbo" / "metrics.json").read_text())
    m = record["metrics"]
    assert record["n_images"] == 5 and record["K"] == 4 and not record["exact"] and record["model"] == "mnist-cosine"
    assert m["bpd_lo"] < m["bpd"] < m["bpd_hi"]
    assert m["bpd"] == pytest.approx(m["L_T"] + m["L_0"] + m["L_middle"])
    assert len(record["model_sha256"]) == 64 and record["seeds"].startswith("0-4")


def test_stage_fails_before_work_naming_the_field(stage_dir, capsys):
    from stages import elbo as stage

    params = yaml.safe_load((stage_dir / "params.yaml").read_text())
    params["elbo"]["n_images"] = 8
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit):
        stage.main(["mnist", "cosine"])
    assert "elbo.n_images: 8 > the 7 images of the test split" in capsys.readouterr().err


@pytest.mark.parametrize("schedule_name", ["linear", "cosine", "sigmoid"])
@pytest.mark.parametrize("variance", ["large", "small"])
def test_the_bound_scores_the_reverse_step_the_ddpm_sampler_takes(schedule_name, variance):
    """The ELBO's p_θ(x_{t−1} | x_t) and the DDPM sampler's step share mean coefficients and variance."""
    from diffbench.diffusion import NoiseSchedule
    from diffbench.elbo import ReverseProcess
    from diffbench.samplers import ddpm

    schedule = NoiseSchedule.named(schedule_name, 100)
    sampler = ddpm._coefficients(schedule, ddpm.Settings(variance=variance))
    bound = ReverseProcess.build(schedule, variance, "cpu")
    for name in ("alpha_bar", "coef_x0", "coef_xt"):
        np.testing.assert_allclose(getattr(bound, name).numpy(), sampler[name], rtol=1e-12, err_msg=name)
    # t ≥ 1 (0-based): at t = 0 the sampler adds no noise and the bound scores the discrete decoder instead.
    np.testing.assert_allclose(bound.model_log_var.exp().numpy()[1:], sampler["sigma"][1:] ** 2, rtol=1e-12)
