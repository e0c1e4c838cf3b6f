"""Toy models of superposition: the batched forward, the pentagon, and validation."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError
from mechscope.labs.superposition.config import ToyConfig
from mechscope.labs.superposition.geometry import adjacent_angles_deg, is_regular_polygon
from mechscope.labs.superposition.toy import forward, sample_batch, train


pytestmark = pytest.mark.usefixtures("one_thread")


def test_batched_forward_equals_per_instance_reference():
    W, b, x = torch.randn(3, 2, 5), torch.randn(3, 5), torch.rand(3, 7, 5)
    out = forward(W, b, x)
    for i in range(3):
        ref = torch.relu(x[i] @ W[i].T @ W[i] + b[i])
        torch.testing.assert_close(out[i], ref)


def test_sparse_batch_density():
    cfg = ToyConfig(n=50, instances=2, batch=2000, density=0.05)
    x = sample_batch(cfg, torch.Generator().manual_seed(0))
    frac = float((x > 0).float().mean())
    assert 0.045 < frac < 0.055 and float(x.max()) <= 1.0
    dens = torch.tensor([1.0, 0.1])
    x = sample_batch(cfg, torch.Generator().manual_seed(0), dens.reshape(-1, 1, 1))
    assert float((x[0] > 0).float().mean()) > 0.99 and 0.09 < float((x[1] > 0).float().mean()) < 0.11


def test_pentagon_n5_m2():
    """n = 5, m = 2, importance 0.9^i, density 0.05 (the defaults): pentagons in >= 2 of 4 instances.

    Measured on seeds 0-11 (4 instances each), ATEN_CPU_CAPABILITY default and avx512 (identical), with the
    hand-written step (2026-12-02): 46 of 48 instances are pentagons (the others are squares with the least
    important feature dropped), every seed has >= 3, adjacent angles within 1.7° of 72° (the issue allows
    5°), norms 1.12-1.15. Seed 0 (used here) gives 4 of 4."""
    cfg = ToyConfig()
    assert (cfg.n, cfg.m, cfg.importance, cfg.density, cfg.instances) == (5, 2, 0.9, 0.05, 4)
    models = train(cfg)
    pentagons = [is_regular_polygon(models.W[i], 5, tol_deg=5.0, min_norm=0.9) for i in range(4)]
    assert sum(pentagons) >= 2, [adjacent_angles_deg(models.W[i]) for i in range(4)]
    assert torch.isfinite(models.final_loss).all()


@pytest.mark.parametrize("kw, match", [
    (dict(n=2, m=3), "n (features) must be >= m"),
    (dict(density=0.0), "density must lie in (0, 1]"),
    (dict(density=1.5), "density must lie in (0, 1]"),
    (dict(importance=0.0), "importance"),
    (dict(instances=0), "instances"),
])  # fmt: skip
def test_bad_config_is_one_line(kw, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")) as exc:
        ToyConfig(**kw)
    assert "\n" not in str(exc.value)
