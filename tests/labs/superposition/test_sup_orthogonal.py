"""Near-orthogonal vectors: chunked statistics against brute force, hand gradients against autograd, bounds."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import ConfigError
from mechscope.labs.superposition import orthogonal as o
from mechscope.labs.superposition.capacity import capacity_curve, jl_capacity, welch_capacity
from mechscope.labs.superposition.config import MAX_ORTHO_N_DIM, OrthoConfig


def brute(V):
    U = V / V.norm(dim=1, keepdim=True)
    c = (U @ U.T).double()
    iu = torch.triu_indices(len(U), len(U), 1)
    pairs = c[iu[0], iu[1]]
    return pairs


def test_angle_stats_match_brute_force():
    V = torch.randn(300, 7) * torch.rand(300, 1)  # unnormalised rows
    st = o.angle_stats(V, chunk=64)
    pairs = brute(V)
    assert st.max_abs_cos == pytest.approx(float(pairs.abs().max()), abs=1e-6)
    assert st.min_angle_deg == pytest.approx(math.degrees(math.acos(float(pairs.max()))), abs=1e-3)
    assert st.max_angle_deg == pytest.approx(math.degrees(math.acos(float(pairs.min()))), abs=1e-3)
    assert st.frac_within_89_91 == pytest.approx(float((pairs.abs() <= math.sin(math.radians(1))).double().mean()))
    assert st.rms_cos == pytest.approx(float(pairs.square().mean().sqrt()), rel=1e-5)
    assert float(st.hist.sum()) == pytest.approx(len(pairs))


def test_orthonormal_basis_is_all_90_degrees():
    st = o.angle_stats(torch.eye(6), chunk=4)
    assert st.min_angle_deg == pytest.approx(90.0) and st.max_angle_deg == pytest.approx(90.0)
    assert st.frac_within_89_91 == 1.0 and st.max_abs_cos == 0.0


def test_3b1b_gradient_equals_autograd():
    V = torch.randn(40, 6, dtype=torch.float64) / 2
    Vg = V.clone().requires_grad_(True)
    d = Vg @ Vg.T - torch.eye(40, dtype=torch.float64)
    loss = (d.abs() - o.CUTOFF_3B1B).relu().sum() + 40 * d.diag().square().sum()
    loss.backward()
    torch.testing.assert_close(o._grad_3b1b(V, chunk=16), Vg.grad)


def test_maxcos_gradient_equals_autograd_on_the_sphere():
    U = o.random_unit_vectors(30, 5).double()
    Ug = U.clone().requires_grad_(True)
    c = Ug @ Ug.T
    c = c - torch.diag(torch.diag(c))
    (c.pow(o.POWER).sum() / o.POWER).backward()
    g = Ug.grad - (Ug.grad * U).sum(1, keepdim=True) * U  # tangent part
    scale = 0.7
    got, worst = o._grad_maxcos(U.clone(), chunk=8, scale=scale, power=o.POWER)
    torch.testing.assert_close(got * scale ** (o.POWER - 1), g)
    assert worst == pytest.approx(float(c.detach().abs().max()))


def test_maxcos_beats_random_and_3b1b_on_the_worst_pair():
    cfg = OrthoConfig(n=600, dim=20, steps=40)
    random_stats, runs = o.run(cfg)
    by = {r.loss: r.stats for r in runs}
    assert by["maxcos"].max_abs_cos < 0.75 * random_stats.max_abs_cos
    assert by["maxcos"].max_abs_cos < by["3b1b"].max_abs_cos
    welch = o.welch_bound(600, 20)
    assert all(st.max_abs_cos >= welch for st in (random_stats, *by.values()))
    assert all(st.rms_cos >= welch - 1e-6 for st in (random_stats, *by.values()))  # frame-potential bound


def test_bounds():
    assert o.welch_bound(10_000, 100) == pytest.approx(0.0995, abs=1e-4)
    assert welch_capacity(100, 1.0) == pytest.approx(103.1, abs=0.1)  # 89-91°: at most 103 vectors in 100 dims
    assert math.isinf(welch_capacity(100, 10.0))
    assert jl_capacity(100, 5.0) == pytest.approx(math.exp(100 * math.sin(math.radians(5)) ** 2 / 4))


def test_capacity_small_dims():
    curve = capacity_curve(dims=(2, 3, 4), eps_deg=20.0, steps=150)
    assert curve.measured[0] == 2  # the Welch bound allows 2.3 vectors in the plane
    for n, w, d in zip(curve.measured, curve.welch, curve.dims):
        assert d <= n <= w


def test_limits_are_one_line():
    with pytest.raises(ConfigError, match=f"the limit is {MAX_ORTHO_N_DIM:,}") as exc:
        OrthoConfig(n=100_000, dim=100)
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="n must be >= 2"):
        OrthoConfig(n=1)
