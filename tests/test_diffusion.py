import numpy as np
import torch

from diffbench.diffusion import NoiseSchedule, q_sample, q_step, simple_loss


def test_closed_form_q_matches_iterated_steps(linear_schedule):
    """Curriculum exercise 1: q(x_t|x_0) in one jump equals t single steps q(x_t|x_{t-1}), in distribution."""
    generator = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000,), 0.7, dtype=torch.float64)
    for t in (0, 9, 99, 499):
        x = x0.clone()
        for step in range(t + 1):
            x = q_step(linear_schedule, x, step, torch.randn(x.shape, generator=generator, dtype=torch.float64))
        jumped = q_sample(
            linear_schedule, x0.float(), torch.full(x0.shape, t), torch.randn(x0.shape, generator=generator)
        ).double()
        a = linear_schedule.alpha_bar[t]
        expected_mean, expected_std = np.sqrt(a) * 0.7, np.sqrt(1 - a)
        for sample in (x, jumped):
            assert abs(sample.mean().item() - expected_mean) < 5 * expected_std / np.sqrt(len(x0)) + 1e-4
            assert abs(sample.std().item() / expected_std - 1) < 0.01


def test_iterated_mean_coefficients_are_sqrt_alpha_bar(linear_schedule):
    """Without noise the iterated steps scale x_0 by ∏√(1−β) = √ᾱ exactly."""
    x = torch.ones(1, dtype=torch.float64)
    for step in range(300):
        x = q_step(linear_schedule, x, step, torch.zeros(1, dtype=torch.float64))
    assert x.item() == np.float64(np.sqrt(linear_schedule.alpha_bar[299])).item() or abs(
        x.item() - np.sqrt(linear_schedule.alpha_bar[299])
    ) < 1e-12


def test_simple_loss_is_zero_for_the_true_noise_predictor():
    schedule = NoiseSchedule.named("cosine", 100)
    x0 = torch.zeros(64, 1, 4, 4)

    class Oracle(torch.nn.Module):  # x_0 = 0 ⇒ x_t = √(1−ᾱ_t) ε, so ε = x_t / √(1−ᾱ_t)
        def forward(self, x, t, y):
            a = torch.tensor(schedule.alpha_bar, dtype=torch.float32)[t].reshape(-1, 1, 1, 1)
            return x / (1 - a).sqrt()

    loss = simple_loss(Oracle(), schedule, x0, None, generator=torch.Generator().manual_seed(1))
    assert loss.item() < 1e-10
    zero = simple_loss(lambda x, t, y: torch.zeros_like(x), schedule, x0, None, torch.Generator().manual_seed(1))
    assert 0.8 < zero.item() < 1.2  # E‖ε‖² per element = 1
