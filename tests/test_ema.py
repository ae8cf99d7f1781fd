"""EMA with warm-up: decay_n = min(decay, (1 + n)/(10 + n)); no trace of the initial weights."""

import math

import pytest
import torch
from torch import nn

from diffbench.ema import EMA, warmup_decay


def linear(value: float) -> nn.Linear:
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        for p in layer.parameters():
            p.fill_(value)
    return layer


def test_warmup_decay_follows_the_rule_and_caps_at_decay():
    assert [warmup_decay(0.9999, n) for n in (0, 1, 10)] == [0.1, 2 / 11, 11 / 20]
    assert warmup_decay(0.9, 1000) == 0.9 and warmup_decay(0.0, 5) == 0.0


def test_short_run_keeps_no_trace_of_the_initial_weights():
    """Init 1, then the model sits at 0 for 200 updates: the EMA is the weight left on the init.

    Without warm-up it would be 0.9999**200 ≈ 0.98; with it ∏ (1+n)/(10+n) = 9!·200!/209! ≈ 6e-16.
    """
    model = linear(1.0)
    ema = EMA(model, decay=0.9999)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    for _ in range(200):
        ema.update(model)
    expected = math.factorial(9) * math.factorial(200) / math.factorial(209)
    for p in ema.model.parameters():
        assert p.abs().max().item() == pytest.approx(expected, rel=1e-3)
    assert ema.updates == 200


def test_ema_tracks_recent_weights_not_the_init():
    """Weights drift linearly 0 → 1 over 200 steps: the EMA (decay 0.9999) ends near the last
    weights (lag ≈ 20 steps at decay_200 ≈ 0.96), far from the initial 0."""
    model = linear(0.0)
    ema = EMA(model, decay=0.9999)
    for step in range(1, 201):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(step / 200)
        ema.update(model)
    value = ema.model.weight[0, 0].item()
    assert 0.85 < value < 1.0  # without warm-up: ≈ 0.01


def test_state_round_trip_continues_the_same_decay_sequence():
    straight, model = EMA(linear(1.0), 0.99), linear(0.5)
    for _ in range(7):
        straight.update(model)
    first = EMA(linear(1.0), 0.99)
    for _ in range(3):
        first.update(model)
    resumed = EMA(linear(1.0), 0.99)
    resumed.load_state_dict(first.state_dict())
    for _ in range(4):
        resumed.update(model)
    assert resumed.updates == 7
    assert all(torch.equal(a, b) for a, b in zip(straight.model.parameters(), resumed.model.parameters()))


def test_bad_decay_is_refused():
    with pytest.raises(ValueError, match="ema decay"):
        EMA(linear(0.0), 1.0)
