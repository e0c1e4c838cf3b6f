"""Sweeps over sparsity and importance, each trained as one batch of toy models.

- :func:`sparsity_sweep`: one instance per feature density (uniform importance), for "D_i against
  sparsity": per-feature dimensionalities cluster on 1, 3/4, 2/3, 1/2, 2/5, 3/8 (Elhage et al. 2022,
  "Feature dimensionality"), and D* steps down as features get sparser.
- :func:`phase_diagram`: two features in one dimension, feature 0 of importance 1, feature 1 of
  relative importance r; both with density p. Each (r, p) cell is one instance; the outcome for feature 1
  is "not represented", "dedicated dimension" (it owns the dimension, feature 0 is dropped) or
  "superposition" (both represented, antipodal).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.labs.superposition.config import ToyConfig
from mechscope.labs.superposition.geometry import NORM_THRESHOLD, d_star, dimensionality, feature_norms
from mechscope.labs.superposition.toy import train

STICKY = ((1.0, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (3 / 8, "3/8"))
"""The fractions at which feature dimensionalities stick (tetrahedra, triangles, antipodal pairs ...)."""
PHASES = ("not represented", "dedicated dimension", "superposition")


@dataclass
class SparsitySweep:
    densities: Tensor
    """[instances] feature density of each instance."""
    W: Tensor
    """[instances, m, n]"""
    dimensionality: Tensor
    """[instances, n] D_i."""
    d_star: Tensor
    """[instances] D*."""

    def to_dict(self) -> dict:
        return {"densities": self.densities.tolist(), "d_star": self.d_star.tolist(),
                "dimensionality": self.dimensionality.tolist()}  # fmt: skip


def sparsity_sweep(n: int = 100, m: int = 20, densities: Tensor | None = None, steps: int = 4_000, lr: float = 1e-2,
                   batch: int = 1024, seed: int = 0, progress: bool = False) -> SparsitySweep:  # fmt: skip
    """Train one instance per density (default: 24 log-spaced densities from 1 to 0.002) with uniform
    importance, all at once."""
    if densities is None:
        densities = torch.logspace(0, -2.7, 24)
    cfg = ToyConfig(n=n, m=m, density=1.0, importance=1.0, instances=len(densities), steps=steps, lr=lr,
                    batch=batch, seed=seed)  # fmt: skip
    models = train(cfg, density=densities, progress=progress)
    return SparsitySweep(densities, models.W, dimensionality(models.W), d_star(models.W))


@dataclass
class PhaseDiagram:
    importances: Tensor
    """[cols] relative importance of feature 1."""
    densities: Tensor
    """[rows] feature density of both features."""
    phase: Tensor
    """[rows, cols] index into :data:`PHASES` (feature 1's outcome)."""
    norms: Tensor
    """[rows, cols, 2] feature norms."""

    def to_dict(self) -> dict:
        return {"importances": self.importances.tolist(), "densities": self.densities.tolist(),
                "phases": list(PHASES), "phase": self.phase.tolist()}  # fmt: skip


def classify(norms: Tensor, threshold: float = NORM_THRESHOLD) -> Tensor:
    """Feature 1's outcome from [..., 2] norms: 0 not represented, 1 dedicated (alone), 2 superposition."""
    on = norms > threshold
    return torch.where(~on[..., 1], 0, torch.where(on[..., 0], 2, 1))


def phase_diagram(importances: Tensor | None = None, densities: Tensor | None = None, steps: int = 3_000,
                  lr: float = 1e-2, batch: int = 512, seed: int = 0, progress: bool = False) -> PhaseDiagram:  # fmt: skip
    """n = 2 features in m = 1 dimension over a grid of (relative importance, density), one batch."""
    if importances is None:
        importances = torch.logspace(-1, 1, 15)
    if densities is None:
        densities = torch.logspace(0, -2, 15)
    rows, cols = len(densities), len(importances)
    dens = densities[:, None].expand(rows, cols).reshape(-1)
    imp = torch.stack([torch.ones(rows * cols), importances[None, :].expand(rows, cols).reshape(-1)], dim=1)
    cfg = ToyConfig(n=2, m=1, density=1.0, importance=1.0, instances=rows * cols, steps=steps, lr=lr, batch=batch,
                    seed=seed)  # fmt: skip
    models = train(cfg, density=dens, importance=imp, progress=progress)
    norms = feature_norms(models.W).reshape(rows, cols, 2)
    return PhaseDiagram(importances, densities, classify(norms), norms)
