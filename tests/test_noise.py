import numpy as np
import torch
from scipy import stats

from diffbench.noise import StepNoise, image_noise, parse_seeds, streams_noise


def test_noise_is_standard_normal():
    z = image_noise(torch.arange(64), 0, (3, 32, 32)).flatten().numpy()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert stats.kstest(z[:50_000], "norm").pvalue > 1e-3


def test_rows_depend_only_on_their_seed_not_on_the_batch():
    seeds = torch.tensor([5, 17, 123456, 9])
    batch = image_noise(seeds, 3, (2, 4, 4))
    for i, seed in enumerate(seeds):
        alone = image_noise(seed[None], 3, (2, 4, 4))
        assert torch.equal(alone[0], batch[i])


def test_seeds_and_streams_give_uncorrelated_noise():
    a = image_noise(torch.arange(200), 0, (256,))
    b = image_noise(torch.arange(200), 1, (256,))
    corr_images = np.corrcoef(a.numpy())[np.triu_indices(200, 1)]
    assert np.abs(corr_images).max() < 0.35  # 256 samples per row: |r| > 0.35 has p < 1e-7
    assert abs(np.corrcoef(a.flatten(), b.flatten())[0, 1]) < 0.02
    assert not torch.equal(a, b)


def test_streams_in_one_pass_equal_one_call_per_stream():
    seeds = torch.tensor([3, 2**33 + 1, 77])
    for first in (0, 5, 2**31 + 9, 2**40 + 3):  # 2^40 · 0x9E3779B9 wraps in int64: its low 32 bits stay exact
        block = streams_noise(seeds, first, 3, (2, 3, 3))
        assert block.shape == (3, 3, 2, 3, 3)
        for i, row in enumerate(block):
            assert torch.equal(row, image_noise(seeds, first + i, (2, 3, 3)))


class CountingStreams:
    def __init__(self, monkeypatch):
        import diffbench.noise as noise
        self.passes: list[list[int]] = []
        real = noise.streams_noise

        def counted(seeds, first, count, shape, device=None):
            self.passes.append(list(range(first, first + count)))
            return real(seeds, first, count, shape, device)
        monkeypatch.setattr(noise, "streams_noise", counted)


def test_step_noise_draws_blocks_never_past_the_last_step_and_in_any_order(monkeypatch):
    seeds, shape = torch.arange(6), (1, 4, 4)
    order = list(range(1, 11)) + [3, 12, 1]
    expected = [image_noise(seeds, 1000 + k, shape) for k in order]
    calls = CountingStreams(monkeypatch)
    noise = StepNoise(seeds, 1000, shape, last=10, max_elements=6 * 16 * 4)  # 4 streams a block
    for k, want in zip(order, expected):
        assert torch.equal(noise(k), want), k
    assert calls.passes[:3] == [[1001, 1002, 1003, 1004], [1005, 1006, 1007, 1008], [1009, 1010]]
    assert calls.passes[3:] == [[1003, 1004, 1005, 1006], [1012], [1001, 1002, 1003, 1004]]


def test_parse_seeds_ranges_like_edm():
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    assert parse_seeds("7") == [7]
