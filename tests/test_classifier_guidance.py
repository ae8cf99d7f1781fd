"""diffbench.classifier_guidance on a two-class Gaussian mixture whose ε and log p(y | x_t) are exact,
plus the wrapper's contract: fp32 gradients under autocast, batch independence, no_grad and
inference_mode, scale validation, null-label-only at s = 0, schedule checks, fractional t."""

from __future__ import annotations

import math

import pytest
import torch

from diffbench.classifier_guidance import alpha_bar_at, classifier_guided_eps
from diffbench.diffusion import NoiseSchedule
from diffbench.errors import DiffbenchError, ParamsError
from diffbench.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from diffbench.samplers import ddim, ddpm

NULL = 2  # the null label of the two-class mixture model


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


class Mixture:
    """x_0 ~ Σ_k π_k N(μ_k, s_k²) in 1-D, class y = component k.
    Under q, x_t | k ~ N(√ᾱ μ_k, ᾱ s_k² + 1 − ᾱ), so log p(y | x_t), the scores and
    ε* = −√(1 − ᾱ) ∇ log p(x_t [| y]) are exact."""

    def __init__(self, schedule: NoiseSchedule, means: list[float], stds: list[float], weights: list[float]):
        self.schedule = schedule
        self.means, self.stds = torch.tensor(means), torch.tensor(stds)
        self.log_weights = torch.tensor(weights).log()

    def _parts(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = alpha_bar_at(self.schedule, t)[:, None]  # (B, 1)
        var = a * self.stds**2 + 1 - a  # (B, K)
        centred = x - a.sqrt() * self.means  # x is (B, 1)
        log_joint = self.log_weights - 0.5 * centred**2 / var - 0.5 * torch.log(2 * math.pi * var)
        return a, log_joint, -centred / var  # per-component scores

    def logits(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log π_k + log N_k(x_t): log_softmax of these is the exact log p(y | x_t)."""
        return self._parts(x, t)[1]

    def score(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇ log p(x_t | y), or ∇ log p(x_t) where y is the null label (B, 1)."""
        _, log_joint, scores = self._parts(x, t)
        posterior = torch.softmax(log_joint, dim=1)
        unconditional = (posterior * scores).sum(1, keepdim=True)
        conditional = scores.gather(1, y.clamp(max=1)[:, None])
        return torch.where((y == NULL)[:, None], unconditional, conditional)

    def eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The exact ε-prediction model: ε*(x_t, t, y) = −√(1 − ᾱ_t) ∇ log p(x_t | y)."""
        a = alpha_bar_at(self.schedule, t)[:, None]
        return -(1 - a).sqrt() * self.score(x, t, y)

    def below_zero(self, label: int | None) -> float:
        """P(x_0 < 0) under p(x_0 | y = label), or under p(x_0) for None."""
        probs = [phi(-float(m) / float(s)) for m, s in zip(self.means, self.stds)]
        if label is not None:
            return probs[label]
        return sum(float(w.exp()) * p for w, p in zip(self.log_weights, probs))


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.named("linear", 1000)


def separated(schedule: NoiseSchedule) -> Mixture:
    return Mixture(schedule, [-0.5, 0.5], [0.1, 0.1], [0.5, 0.5])


def overlapping(schedule: NoiseSchedule) -> Mixture:
    return Mixture(schedule, [-0.25, 0.25], [0.25, 0.25], [0.3, 0.7])


def sample(mixture: Mixture, labels: torch.Tensor, scale: float | None, sampler=ddpm, steps: int = 1000,
           settings=None) -> torch.Tensor:
    """Guided samples (B, 1) from x_T drawn with a fixed seed."""
    generator = torch.Generator().manual_seed(0)
    x_T = torch.randn(len(labels), 1, generator=generator)
    eps_fn = classifier_guided_eps(mixture.eps, mixture.logits, labels, scale, NULL, mixture.schedule)
    settings = settings or ddpm.Settings(variance="small", clip_x0=False)
    return sampler.sample(eps_fn, x_T, mixture.schedule, steps, lambda k: torch.randn(x_T.shape, generator=generator),
                          settings)


# --------------------------------------------------------------------------- exactness of the wrapper


def test_gradient_equals_autograd_and_the_closed_form(schedule):
    mixture = overlapping(schedule)
    x = torch.linspace(-2, 2, 41)[:, None]
    t = torch.arange(41) * 24
    labels = torch.arange(41) % 2
    scale = 2.5
    guided = classifier_guided_eps(mixture.eps, mixture.logits, labels, scale, NULL, schedule)
    with torch.no_grad():  # as the samplers call it
        out = guided(x, t)
    a = torch.tensor(schedule.alpha_bar, dtype=torch.float32)[t][:, None]
    null = torch.full_like(labels, NULL)
    # ∇ log p(y|x) = ∇ log p(x|y) − ∇ log p(x)
    closed_form = mixture.score(x, t, labels) - mixture.score(x, t, null)
    x_req = x.clone().requires_grad_(True)
    autograd = torch.autograd.grad(
        torch.log_softmax(mixture.logits(x_req, t), 1).gather(1, labels[:, None]).sum(), x_req
    )[0]
    assert torch.allclose(autograd, closed_form, atol=1e-5)
    expected = mixture.eps(x, t, null) - scale * (1 - a).sqrt() * closed_form
    assert torch.allclose(out, expected, atol=1e-5)
    assert out.dtype == torch.float32 and not out.requires_grad
    assert guided.model_calls == 1 and guided.backward_passes == 1


def test_scale_one_is_the_exact_conditional_eps(schedule):
    """ε(x, ∅) − √(1−ᾱ) ∇ log p(y|x) = −√(1−ᾱ) ∇ log p(x|y): Bayes' rule, at every t."""
    mixture = overlapping(schedule)
    x = torch.randn(200, 1, generator=torch.Generator().manual_seed(1))
    t = torch.randint(0, 1000, (200,), generator=torch.Generator().manual_seed(2))
    labels = torch.arange(200) % 2
    out = classifier_guided_eps(mixture.eps, mixture.logits, labels, 1.0, NULL, schedule)(x, t)
    assert torch.allclose(out, mixture.eps(x, t, labels), atol=1e-5)
    assert not torch.allclose(out, mixture.eps(x, t, torch.full_like(labels, NULL)), atol=1e-2)


# --------------------------------------------------------------------------- class balance of guided samples


def test_separated_components_scale_one_samples_the_asked_class(schedule):
    mixture = separated(schedule)
    labels = torch.arange(2000) % 2
    x = sample(mixture, labels, 1.0)[:, 0]
    assert (x[labels == 0] < 0).float().mean() > 0.995
    assert (x[labels == 1] > 0).float().mean() > 0.995
    # and within the asked component it is p(x | y), not a collapse onto its mean
    assert abs(x[labels == 0].mean() + 0.5) < 0.02 and abs(x[labels == 0].std() - 0.1) < 0.02
    unguided = sample(mixture, labels, 0.0)[:, 0]
    assert abs((unguided < 0).float().mean() - 0.5) < 0.05  # s = 0: the unconditional balance, labels ignored


def test_overlapping_components_balance_matches_the_exact_mixture(schedule):
    """P(x_0 < 0): p(x) at s = 0 (0.364), p(x | y) at s = 1 (0.841 / 0.159); s = 3 sharpens further."""
    mixture = overlapping(schedule)
    n = 4000
    labels = torch.arange(n) % 2

    def close(share: torch.Tensor, p: float, count: int) -> bool:  # 4 binomial standard errors + discretisation
        return abs(float(share) - p) < 4 * math.sqrt(p * (1 - p) / count) + 0.01

    s0 = sample(mixture, labels, 0.0)[:, 0]
    assert close((s0 < 0).float().mean(), mixture.below_zero(None), n)
    s1 = sample(mixture, labels, 1.0)[:, 0]
    for label in (0, 1):
        assert close((s1[labels == label] < 0).float().mean(), mixture.below_zero(label), n // 2)
    s3 = sample(mixture, labels, 3.0)[:, 0]
    assert (s3[labels == 0] < 0).float().mean() > (s1[labels == 0] < 0).float().mean() + 0.05
    assert (s3[labels == 1] < 0).float().mean() < (s1[labels == 1] < 0).float().mean() - 0.05


def test_ddim_carries_the_wrapper_unchanged(schedule):
    mixture = separated(schedule)
    labels = torch.arange(1000) % 2
    x = sample(mixture, labels, 1.0, sampler=ddim, steps=100, settings=ddim.Settings())[:, 0]
    assert (x[labels == 0] < 0).float().mean() > 0.99 and (x[labels == 1] > 0).float().mean() > 0.99


# --------------------------------------------------------------------------- contract with samplers and models


def tiny_classifier(schedule: NoiseSchedule, seed: int = 0) -> NoisyClassifier:
    torch.manual_seed(seed)
    config = NoisyClassifierConfig(
        image_size=8, in_channels=1, num_classes=3, schedule=schedule.name, timesteps=schedule.timesteps,
        channels=16, channel_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), norm_groups=8,
    )
    return NoisyClassifier(config)


class NullRecorder(torch.nn.Module):
    """ε(x, t, y) = 0.1·x; records the labels it is asked with."""

    def __init__(self):
        super().__init__()
        self.labels: list[torch.Tensor] = []

    def forward(self, x, t, y):
        self.labels.append(y.clone())
        return 0.1 * x


def test_fp32_gradient_under_bf16_autocast_and_batch_independence():
    schedule = NoiseSchedule.named("cosine", 100)
    classifier = tiny_classifier(schedule).train()  # the wrapper puts it in eval mode
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 10, 30, 50, 80, 99])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    guided = classifier_guided_eps(lambda x, t, y: torch.zeros_like(x), classifier, labels, 4.0, 3, schedule)
    assert not classifier.training
    with torch.no_grad():
        reference = guided(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = guided(x, t)
            bf16_logits = classifier(x, t)
    assert bf16_logits.dtype == torch.bfloat16  # autocast is live, and the wrapper still takes fp32 gradients
    assert under_autocast.dtype == torch.float32
    assert torch.allclose(under_autocast, reference, atol=1e-6)
    assert reference.abs().amax() > 1e-4
    halves = [classifier_guided_eps(lambda x, t, y: torch.zeros_like(x), classifier, labels[i:i + 3], 4.0, 3,
                                    schedule)(x[i:i + 3], t[i:i + 3]) for i in (0, 3)]
    assert torch.allclose(torch.cat(halves), reference, atol=1e-6)
    assert all(p.grad is None for p in classifier.parameters())


def test_works_under_inference_mode():
    schedule = NoiseSchedule.named("cosine", 100)
    classifier = tiny_classifier(schedule)
    x, t, labels = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 95]), torch.tensor([0, 1, 2])
    guided = classifier_guided_eps(NullRecorder(), classifier, labels, 2.0, 3, schedule)
    with torch.no_grad():
        expected = guided(x, t)
    with torch.inference_mode():
        x_inf, t_inf = x.clone(), t.clone()
        got = guided(x_inf, t_inf)
    assert torch.allclose(got, expected, atol=1e-6)


def test_scale_zero_and_none_use_only_the_null_label_and_no_classifier():
    schedule = NoiseSchedule.named("linear", 100)
    model, calls = NullRecorder(), []

    def classifier(x, t):
        calls.append(1)
        return torch.cat([x[:, :1], -x[:, :1], 0 * x[:, :1]], dim=1)

    x, t, labels = torch.randn(4, 2), torch.full((4,), 7), torch.tensor([0, 1, 2, 0])
    for scale in (0.0, None):
        guided = classifier_guided_eps(model, classifier, labels, scale, 3, schedule)
        assert torch.equal(guided(x, t), 0.1 * x)
        assert guided.backward_passes == 0
    assert calls == [] and all(y.tolist() == [3, 3, 3, 3] for y in model.labels)
    guided = classifier_guided_eps(model, classifier, labels, 1.0, 3, schedule)
    guided(x, t)
    assert model.labels[-1].tolist() == [3, 3, 3, 3] and calls == [1]  # ε still from ∅ when guided


@pytest.mark.parametrize("scale", [-1.0, float("inf"), float("nan"), "3", True])
def test_impossible_scales_fail_in_one_line(scale):
    schedule = NoiseSchedule.named("linear", 100)
    with pytest.raises(ParamsError, match="classifier guidance scale") as error:
        classifier_guided_eps(NullRecorder(), tiny_classifier(schedule), torch.tensor([0]), scale, 3, schedule)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name, timesteps", [("linear", 100), ("cosine", 1000)])
def test_a_classifier_of_another_schedule_or_t_is_refused(name, timesteps):
    classifier = tiny_classifier(NoiseSchedule.named("cosine", 100))
    with pytest.raises(DiffbenchError, match=r"trained for schedule 'cosine' with T=100") as error:
        other = NoiseSchedule.named(name, timesteps)
        classifier_guided_eps(NullRecorder(), classifier, torch.tensor([0]), 1.0, 3, other)
    assert "\n" not in str(error.value)


def test_labels_outside_the_classifier_classes_fail():
    schedule = NoiseSchedule.named("cosine", 100)
    with pytest.raises(DiffbenchError, match=r"labels must be in 0\.\.2"):
        classifier_guided_eps(NullRecorder(), tiny_classifier(schedule), torch.tensor([0, 3]), 1.0, 3, schedule)


def test_alpha_bar_at_integer_and_fractional_t():
    schedule = NoiseSchedule.named("cosine", 1000)
    table = torch.tensor(schedule.alpha_bar, dtype=torch.float32)
    t = torch.tensor([0, 1, 500, 998, 999])
    assert torch.equal(alpha_bar_at(schedule, t), table[t])
    assert torch.allclose(alpha_bar_at(schedule, t.float()), table[t], rtol=1e-6)
    fractional = alpha_bar_at(schedule, torch.tensor([0.5, 499.25, 998.5]))
    low, high = table[[0, 499, 998]], table[[1, 500, 999]]
    assert ((fractional < low) & (fractional > high)).all()  # strictly between the neighbours
    # linear in log σ: the midpoint's σ² is the geometric mean of the neighbours' σ²
    sigma2 = (1 - schedule.alpha_bar) / schedule.alpha_bar  # float64
    mid = float(alpha_bar_at(schedule, torch.tensor([499.5])))
    assert (1 - mid) / mid == pytest.approx(math.sqrt(sigma2[499] * sigma2[500]), rel=1e-5)
