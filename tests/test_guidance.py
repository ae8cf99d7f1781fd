import pytest
import torch

from diffbench.errors import ParamsError
from diffbench.guidance import guided_eps
from diffbench.runs import passes_per_evaluation


class Recorder(torch.nn.Module):
    """ε(x, t, y) = x·(y + 1): easy to tell labels apart; records calls."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, y):
        self.calls.append(y.clone())
        return x * (y.float() + 1).reshape(-1, 1)


def test_scale_one_equals_the_conditional_model():
    model = Recorder()
    x, t, y = torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 2, 3])
    assert torch.equal(guided_eps(model, y, 1.0, 10)(x, t), model(x, t, y))


def test_guided_formula_and_single_batched_forward():
    model = Recorder()
    x, t, y = torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 2, 3])
    out = guided_eps(model, y, 3.0, 10)(x, t)
    eps_c, eps_u = x * (y.float() + 1).reshape(-1, 1), x * 11
    assert torch.allclose(out, eps_u + 3.0 * (eps_c - eps_u))
    assert len(model.calls) == 1 and model.calls[0].tolist() == [0, 1, 2, 3, 10, 10, 10, 10]


def test_formula_at_scale_one_matches_conditional_to_rounding():
    model = Recorder()
    x, t, y = torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 2, 3])
    near_one = guided_eps(model, y, 1.0 + 1e-12, 10)(x, t)
    assert torch.allclose(near_one, model(x, t, y), atol=1e-6)


def test_unguided_and_scale_zero_use_only_the_null_label():
    model = Recorder()
    x, t, y = torch.randn(2, 3), torch.zeros(2, dtype=torch.long), torch.tensor([1, 2])
    assert torch.equal(guided_eps(model, y, None, 10)(x, t), x * 11)
    assert torch.allclose(guided_eps(model, y, 0.0, 10)(x, t), x * 11)


@pytest.mark.parametrize("scale", [None, 0.0, 1.0, 3.0])
def test_passes_per_evaluation_counts_the_rows_the_model_sees_per_image(scale):
    model = Recorder()
    x, t, y = torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 2, 3])
    guided_eps(model, y, scale, 10)(x, t)
    assert sum(len(call) for call in model.calls) == 4 * passes_per_evaluation(scale)


@pytest.mark.parametrize("scale", [-1.0, float("inf"), "7", True])
def test_impossible_scales_fail(scale):
    with pytest.raises(ParamsError, match="guidance scale"):
        guided_eps(Recorder(), torch.tensor([0]), scale, 10)
