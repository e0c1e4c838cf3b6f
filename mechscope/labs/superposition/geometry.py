"""Geometry of trained toy models: feature norms, per-feature dimensionality, D*, and angles in 2-D.

- Feature dimensionality (Elhage et al. 2022, "Feature dimensionality"):
  D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)², with W_i the i-th column of W (feature i's direction). A feature with
  a dimension to itself has D_i = 1; two antipodal features share one dimension (1/2 each); a pentagon
  of five features in two dimensions gives 2/5 each. A feature that is not represented (W_i = 0) has 0.
- D* = m / ‖W‖²_F: hidden dimensions per unit of feature norm² ("dimensions per feature").
- For m = 2, the angles between angularly adjacent features whose norm exceeds 0.5 (they sum to 360°).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

NORM_THRESHOLD = 0.5
"""A feature counts as represented (and enters ``angles_deg``) when its column norm exceeds this."""


def feature_norms(W: Float[Tensor, "*inst m n"]) -> Float[Tensor, "*inst n"]:
    """‖W_i‖ for each feature i."""
    return W.norm(dim=-2)


def dimensionality(W: Float[Tensor, "*inst m n"], eps: float = 1e-12) -> Float[Tensor, "*inst n"]:
    """D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)² per feature (0 for a zero column)."""
    sq = W.square().sum(-2)  # [..., n]
    gram = W.transpose(-1, -2) @ W  # [..., n, n]: W_i · W_j
    # (Ŵ_i · W_j)² = (W_i · W_j)² / ‖W_i‖²
    interference = gram.square().sum(-1) / sq.clamp_min(eps)  # [..., n]
    return torch.where(sq > eps, sq / interference.clamp_min(eps), torch.zeros_like(sq))


def d_star(W: Float[Tensor, "*inst m n"]) -> Float[Tensor, "*inst"]:
    """D* = m / ‖W‖²_F (inf when W is all zero)."""
    m = W.shape[-2]
    return m / W.square().sum((-1, -2))


def adjacent_angles_deg(W: Float[Tensor, "2 n"], threshold: float = NORM_THRESHOLD) -> list[float]:
    """For one 2-D model: the angles (degrees) between angularly adjacent features with norm > threshold.

    k such features give k angles summing to 360 (one feature: [360.0]; none: [])."""
    if W.shape[0] != 2:
        raise ValueError(f"adjacent angles need m = 2, got m = {W.shape[0]}")
    keep = feature_norms(W) > threshold
    theta = torch.atan2(W[1, keep], W[0, keep]).double()
    if theta.numel() == 0:
        return []
    theta = torch.sort(torch.remainder(theta, 2 * math.pi)).values
    gaps = torch.diff(theta, append=theta[:1] + 2 * math.pi)
    return [math.degrees(float(g)) for g in gaps]


def is_regular_polygon(W: Float[Tensor, "2 n"], k: int, *, tol_deg: float = 5.0, min_norm: float = 0.9) -> bool:
    """True when exactly ``k`` features are represented, all with norm >= ``min_norm`` and adjacent angles
    within ``tol_deg`` of 360/k (a pentagon: k = 5, 72° ± 5°)."""
    norms = feature_norms(W)
    angles = adjacent_angles_deg(W)
    return (len(angles) == k and int((norms > NORM_THRESHOLD).sum()) == k and bool((norms[norms > NORM_THRESHOLD] >= min_norm).all())
            and all(abs(a - 360.0 / k) <= tol_deg for a in angles))  # fmt: skip


def summarize(W: Float[Tensor, "inst m n"]) -> list[dict]:
    """Per instance: ``norms``, ``d_star``, ``dimensionality`` and (m = 2 only, else []) ``angles_deg``."""
    norms, dims, ds = feature_norms(W), dimensionality(W), d_star(W)
    out = []
    for i in range(W.shape[0]):
        out.append({
            "norms": [round(float(v), 6) for v in norms[i]],
            "d_star": float(ds[i]),
            "dimensionality": [round(float(v), 6) for v in dims[i]],
            "angles_deg": [round(a, 4) for a in adjacent_angles_deg(W[i])] if W.shape[1] == 2 else [],
        })  # fmt: skip
    return out
