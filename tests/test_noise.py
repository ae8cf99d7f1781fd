import numpy as np
import torch
from scipy import stats

from diffbench.noise import image_noise, parse_seeds


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


def test_parse_seeds_ranges_like_edm():
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    assert parse_seeds("7") == [7]
