"""How many directions fit within ±ε of 90° of each other, as the dimension grows, and the bounds.

For a tolerance ε (degrees), vectors "fit" when every pair has |cos θ| ≤ sin ε. Three curves:

- **measured**: the largest N for which the smooth-maximum optimiser of :mod:`.orthogonal` (loss
  "maxcos") finds N unit vectors in ``dim`` dimensions that fit (searched over N by bisection; a lower
  bound on the true capacity, since an optimiser can miss a packing);
- **Welch** (upper): when dim · sin²ε < 1, no more than dim (1 - sin²ε) / (1 - dim sin²ε) vectors can fit;
  at ε = 1° and dim = 100 that is 103 vectors, not 10,000;
- **Johnson–Lindenstrauss / union bound** (lower): N random unit vectors fit with positive probability
  once N² e^{-dim sin²ε / 2} < 1, so N = e^{dim sin²ε / 4} fit. Exponential in dim, but the rate sin²ε/4 is
  tiny for small ε: it passes the trivial dim (an orthonormal basis) only for dim ≫ 1/sin²ε.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mechscope.labs.superposition.config import OrthoConfig
from mechscope.labs.superposition.orthogonal import optimise, random_unit_vectors


def tolerance_cos(eps_deg: float) -> float:
    """|cos θ| bound of "within ±eps_deg of 90°"."""
    return math.sin(math.radians(eps_deg))


def welch_capacity(dim: int, eps_deg: float) -> float:
    """Upper bound on how many vectors fit (inf where the bound says nothing, dim · sin²ε ≥ 1)."""
    s2 = tolerance_cos(eps_deg) ** 2
    return dim * (1 - s2) / (1 - dim * s2) if dim * s2 < 1 else math.inf


def jl_capacity(dim: int, eps_deg: float) -> float:
    """e^{dim · sin²ε / 4}: that many random vectors fit with positive probability (union bound)."""
    return math.exp(dim * tolerance_cos(eps_deg) ** 2 / 4)


def fits(n: int, dim: int, eps_deg: float, steps: int, seed: int = 0) -> bool:
    """Whether the maxcos optimiser packs ``n`` vectors in ``dim`` dimensions within ±eps_deg of 90°."""
    if n <= dim:
        return True  # an orthonormal basis
    cfg = OrthoConfig(n=n, dim=dim, loss="maxcos", steps=steps, lr=0.01, seed=seed)
    run = optimise(cfg, "maxcos", random_unit_vectors(n, dim, seed))
    return run.stats.max_abs_cos <= tolerance_cos(eps_deg)


def measured_capacity(dim: int, eps_deg: float, steps: int = 300, n_max: int = 4096) -> int:
    """Largest N ≤ n_max (bisection; monotone in practice) that the optimiser packs."""
    lo, hi = dim, dim + 1
    while hi <= n_max and fits(hi, dim, eps_deg, steps):
        lo, hi = hi, min(2 * hi, n_max + 1)
    while hi - lo > max(1, lo // 50):  # 2 % resolution
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid, dim, eps_deg, steps) else (lo, mid)
    return lo


@dataclass
class CapacityCurve:
    eps_deg: float
    dims: list[int]
    measured: list[int]
    welch: list[float]
    jl: list[float]

    def to_dict(self) -> dict:
        return {"eps_deg": self.eps_deg, "dims": self.dims, "measured": self.measured,
                "welch_upper": [None if math.isinf(w) else w for w in self.welch], "jl_lower": self.jl}  # fmt: skip


def capacity_curve(dims: tuple[int, ...] = (2, 4, 8, 16, 32, 64), eps_deg: float = 5.0, steps: int = 300,
                   n_max: int = 4096) -> CapacityCurve:  # fmt: skip
    """Measured capacity and both bounds for each dimension."""
    with torch.no_grad():
        measured = [measured_capacity(d, eps_deg, steps, n_max) for d in dims]
    return CapacityCurve(eps_deg, list(dims), measured, [welch_capacity(d, eps_deg) for d in dims],
                         [jl_capacity(d, eps_deg) for d in dims])  # fmt: skip


