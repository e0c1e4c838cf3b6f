"""SAEs recover a toy model's features (superposition lab, part 4)."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError
from mechscope.labs.superposition.config import RecoveryConfig
from mechscope.labs.superposition.recovery import best_cosines, recover


def test_best_cosines_equal_brute_force():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=g), torch.randn(11, 5, generator=g) * 3
    want = [max(float(torch.dot(x, y) / (x.norm() * y.norm())) for y in b) for x in a]
    assert torch.allclose(best_cosines(a, b), torch.tensor(want), atol=1e-6)


def test_topk_saes_find_the_features_of_toy_models(one_thread):
    rec = recover(RecoveryConfig(m=6, ratios=(1, 3), toy_steps=1500, sae_tokens=200_000, rows=16_384, density=0.05))
    few, many = rec.rows
    assert few.n == 6 and many.n == 18 and few.represented >= 5
    assert few.recovery > 0.95  # no superposition: each feature has a dimension, the SAE finds it
    assert many.represented > 6  # superposition: more features than dimensions are represented
    assert many.recovery > 0.8
    assert len(many.cosines) == many.represented and max(many.cosines) <= 1.0 + 1e-6


@pytest.mark.parametrize("bad", [dict(ratios=()), dict(ratios=(0,)), dict(arch="gated"), dict(m=0),
                                 dict(density=0.0), dict(m=1000, ratios=(8,))])  # fmt: skip
def test_bad_settings_are_one_line(bad):
    with pytest.raises(ConfigError):
        RecoveryConfig(**bad)
