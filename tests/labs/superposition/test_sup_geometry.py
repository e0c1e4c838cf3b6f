"""Geometry of hand-built toy weights: norms, D_i, D*, adjacent angles (known answers)."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.labs.superposition.geometry import (adjacent_angles_deg, d_star, dimensionality, is_regular_polygon,
                                                   summarize)  # fmt: skip


def polygon(k: int, radius: float = 1.0, offset: float = 0.3) -> torch.Tensor:
    theta = offset + 2 * math.pi * torch.arange(k) / k
    return radius * torch.stack([torch.cos(theta), torch.sin(theta)])  # [2, k]


def test_pentagon_geometry():
    W = polygon(5)[:, [3, 0, 4, 1, 2]]  # feature order must not matter
    assert adjacent_angles_deg(W) == pytest.approx([72.0] * 5, abs=1e-4)
    assert dimensionality(W) == pytest.approx(torch.full((5,), 2 / 5), abs=1e-5)
    assert float(d_star(W)) == pytest.approx(2 / 5)
    assert is_regular_polygon(W, 5)
    assert not is_regular_polygon(W, 4)
    assert not is_regular_polygon(0.8 * W, 5)  # norms below 0.9


def test_dimensionality_known_cases():
    # feature 0 alone on axis x (D=1); features 1, 2 antipodal on y (1/2 each); feature 3 unused (0)
    W = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, -1.0, 0.0]])
    assert dimensionality(W) == pytest.approx(torch.tensor([1.0, 0.5, 0.5, 0.0]))
    assert float(d_star(W)) == pytest.approx(2 / 3)  # m / ‖W‖²_F = 2 / 3
    # a square in 2-D: orthogonal neighbours, antipodal partners -> 1/2 each
    assert dimensionality(polygon(4)) == pytest.approx(torch.full((4,), 0.5), abs=1e-5)
    # D_i does not depend on the scale of W, D* does
    assert dimensionality(3 * polygon(5)) == pytest.approx(dimensionality(polygon(5)), abs=1e-5)
    assert float(d_star(2 * polygon(5))) == pytest.approx(2 / 20)


def test_angles_skip_small_features_and_sum_to_360():
    W = torch.cat([polygon(3), 0.4 * polygon(2)], dim=1)  # two features below the 0.5 norm threshold
    angles = adjacent_angles_deg(W)
    assert len(angles) == 3 and sum(angles) == pytest.approx(360.0)
    assert adjacent_angles_deg(torch.zeros(2, 4)) == []
    assert adjacent_angles_deg(polygon(1)) == pytest.approx([360.0])


def test_summarize_schema():
    W = torch.stack([polygon(5), polygon(4, offset=0.0)[:, [0, 1, 2, 3, 0]] * torch.tensor([1, 1, 1, 1, 0.0])])
    out = summarize(W)
    assert [len(o["angles_deg"]) for o in out] == [5, 4]
    assert set(out[0]) == {"norms", "d_star", "dimensionality", "angles_deg"}
    assert out[1]["norms"][4] == 0.0 and out[1]["dimensionality"][4] == 0.0
    assert summarize(torch.randn(2, 3, 6))[0]["angles_deg"] == []  # m = 3: no 2-D angles
