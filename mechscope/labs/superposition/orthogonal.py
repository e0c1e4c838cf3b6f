"""How many nearly perpendicular directions fit in a space: random and optimised vector sets, honestly measured.

3Blue1Brown's demo ("How might LLMs store facts") optimises 10,000 vectors in 100 dimensions and shows
that nearly all pairs end up between 89° and 91°. Two things the histogram does not show:

- **the tail.** The frame-potential bound Σ_{i,j} cos²θ_ij ≥ n²/dim fixes the mean cos² over pairs at
  ≥ (n/dim - 1)/(n - 1) ≈ 0.0099 for 10,000 × 100 (root-mean-square |cos| ≥ 0.0995, i.e. 84.3°), so if
  most pairs sit inside 89–91° (|cos| ≤ 0.0175) the rest must carry the mass: a tail of far-from-
  perpendicular pairs. The Welch bound says the same for the worst pair: max |cos| ≥ 0.0995.
- **the loss.** The video's loss, Σ relu(|v_i·v_j - δ_ij| - 0.01) + n Σ (|v_i|² - 1)², pulls every
  pair outside its dead zone with the same force. Its dead zone (|dot| ≤ 0.01) is narrower than any set
  of 10,000 vectors can reach, and an L1 penalty favours *few, large* violations, so it buys a narrow
  peak at the price of that tail. The alternative here, "welch", is a squared hinge on unit vectors,
  Σ relu(|cos θ_ij| - τ)² with τ the Welch bound: its dead zone is as wide as the best possible set
  needs, the squared penalty spreads the violations, and it moves the minimum angle towards the bound.

Everything is computed in row chunks of the n × n cosine matrix (10,000² floats would be 400 MB), with
hand-written gradients, so memory stays at ``chunk · n`` floats. :func:`capacity_curve` measures how
many vectors fit within ±ε of 90° as the dimension grows, beside the Johnson–Lindenstrauss and Welch
bounds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from mechscope.labs.superposition.config import OrthoConfig
from mechscope.runtime import flush_denormals

CUTOFF_3B1B = 0.01
"""The video's dead zone on dot products: pairs with |v_i·v_j| ≤ 0.01 cost nothing."""
LOSSES = ("3b1b", "maxcos")
POWER = 16
"""Exponent p of the smooth maximum Σ |cos|^p (a power of two)."""
BAND_COS = math.sin(math.radians(1.0))
"""|cos θ| ≤ sin 1° ⇔ θ within 89–91°."""
HIST_BINS = 3600
"""Histogram bins over cos ∈ [-1, 1] (about 0.03° wide near 90°)."""


@dataclass
class AngleStats:
    """Honest numbers for one vector set: the worst pairs, not only the bulk."""

    max_abs_cos: float
    min_angle_deg: float
    """Smallest pairwise angle (the most parallel pair)."""
    max_angle_deg: float
    """Largest pairwise angle (the most anti-parallel pair)."""
    frac_within_89_91: float
    """Fraction of pairs i < j with angle in [89°, 91°]."""
    rms_cos: float
    """Root-mean-square cosine over pairs (≥ sqrt((n/dim - 1)/(n - 1)) for any set)."""
    hist: Tensor = field(repr=False)
    """Pair counts in :data:`HIST_BINS` equal bins of cos over [-1, 1] (pairs i < j)."""

    def to_dict(self) -> dict:
        return {"max_abs_cos": self.max_abs_cos, "min_angle_deg": self.min_angle_deg,
                "max_angle_deg": self.max_angle_deg, "frac_within_89_91": self.frac_within_89_91,
                "rms_cos": self.rms_cos}  # fmt: skip


def random_unit_vectors(n: int, dim: int, seed: int = 0) -> Float[Tensor, "n dim"]:
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(n, dim, generator=gen)
    return v / v.norm(dim=1, keepdim=True)


def _chunks(n: int, chunk: int):
    for lo in range(0, n, chunk):
        yield lo, min(lo + chunk, n)


def angle_stats(V: Float[Tensor, "n dim"], chunk: int = 1024) -> AngleStats:
    """Pairwise statistics of the directions of ``V`` (rows are normalised first), chunk by chunk."""
    U = V / V.norm(dim=1, keepdim=True).clamp_min(1e-30)
    n = U.shape[0]
    hi_cos, lo_cos, inside, sq = -2.0, 2.0, 0, 0.0
    hist = torch.zeros(HIST_BINS, dtype=torch.float64)
    for lo, hi in _chunks(n, chunk):
        c = U[lo:hi] @ U.T  # [chunk, n]
        rows, cols = torch.arange(hi - lo), torch.arange(lo, hi)
        c[rows, cols] = -2.0  # the diagonal is no pair: out of the way of max, then of min, then 0
        hi_cos = max(hi_cos, float(c.max()))
        c[rows, cols] = 2.0
        lo_cos = min(lo_cos, float(c.min()))
        c[rows, cols] = 0.0
        inside += int((c.abs() <= BAND_COS).sum()) - (hi - lo)
        sq += float(c.square().sum(dtype=torch.float64))
        hist += torch.histc(c, bins=HIST_BINS, min=-1.0, max=1.0).double()
        hist[HIST_BINS // 2] -= hi - lo  # cos = 0 falls in the bin right of the centre
    pairs = n * (n - 1)  # ordered pairs counted above; every statistic is symmetric
    return AngleStats(
        max_abs_cos=max(hi_cos, -lo_cos),
        min_angle_deg=math.degrees(math.acos(min(1.0, hi_cos))),
        max_angle_deg=math.degrees(math.acos(max(-1.0, lo_cos))),
        frac_within_89_91=inside / pairs,
        rms_cos=math.sqrt(sq / pairs),
        hist=hist / 2,
    )


def welch_bound(n: int, dim: int) -> float:
    """Smallest possible max |cos| of n unit vectors in dim dimensions (n > dim): sqrt((n-d)/(d(n-1)))."""
    return math.sqrt(max(n - dim, 0) / (dim * (n - 1)))


def _grad_3b1b(V: Tensor, chunk: int) -> Tensor:
    """Gradient of the video's loss Σ_ij relu(|v_i·v_j - δ_ij| - 0.01) + n Σ_i (|v_i|² - 1)²."""
    n = V.shape[0]
    grad = torch.empty_like(V)
    for lo, hi in _chunks(n, chunk):
        d = V[lo:hi] @ V.T  # [chunk, n] dot products
        rows, cols = torch.arange(hi - lo), torch.arange(lo, hi)
        diag = d[rows, cols] - 1.0
        d[rows, cols] = diag
        g = F.softshrink(d, CUTOFF_3B1B).sign_()  # dL/dd: ±1 outside the dead zone, 0 inside
        g[rows, cols] += 2 * n * diag
        grad[lo:hi] = 2 * (g @ V)  # d is symmetric: dL/dV = (g + gᵀ) V
    return grad


def _odd_power_(c: Tensor, p: int) -> Tensor:
    """c^(p-1) in place for p a power of two (repeated squaring: a handful of passes, faster than pow)."""
    sq = c.square()
    while p > 2:  # c · (c²)^(p/2 - 1) by doubling the even part
        c.mul_(sq)
        p //= 2
        if p > 2:
            sq.square_()
    return c


def _grad_maxcos(U: Tensor, chunk: int, scale: float, power: int) -> tuple[Tensor, float]:
    """Gradient, on the sphere, of Σ_{i≠j} cos_ij^p / p for unit rows U, divided by ``scale``^(p-1) (any
    positive factor: Adam ignores it, and it keeps the numbers near 1); also the current max |cos|."""
    n = U.shape[0]
    grad, worst = torch.empty_like(U), 0.0
    for lo, hi in _chunks(n, chunk):
        c = U[lo:hi] @ U.T  # [chunk, n]
        rows, cols = torch.arange(hi - lo), torch.arange(lo, hi)
        c[rows, cols] = 0.0
        worst = max(worst, float(c.abs().max()))
        g = _odd_power_(c.div_(scale), power)  # d/dc c^p / p = c^(p-1)
        grad[lo:hi] = 2 * (g @ U)
    grad -= (grad * U).sum(1, keepdim=True) * U  # keep only the tangent part
    return grad, worst


@dataclass
class OrthoRun:
    loss: str
    stats: AngleStats
    seconds: float
    steps: int
    V: Tensor = field(repr=False)

    def to_dict(self) -> dict:
        return {"loss": self.loss, **self.stats.to_dict(), "seconds": round(self.seconds, 3), "steps": self.steps}


def optimise(cfg: OrthoConfig, loss: str, V0: Tensor | None = None, progress: bool = False) -> OrthoRun:
    """Run ``cfg.steps`` full-batch Adam steps of ``loss`` ("3b1b" or "maxcos") from ``V0`` (default: the
    random unit vectors of ``cfg.seed``)."""
    V = (random_unit_vectors(cfg.n, cfg.dim, cfg.seed) if V0 is None else V0).clone()
    V.requires_grad_(False)
    param = torch.nn.Parameter(V)
    opt = torch.optim.Adam([param], lr=cfg.lr)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc=f"orthogonal ({loss})", unit="step", leave=False)
    start = time.perf_counter()
    scale = 1.0
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}")
    with flush_denormals(), torch.no_grad():
        for _ in range(cfg.steps):
            if loss == "3b1b":
                param.grad = _grad_3b1b(param.data, cfg.chunk)
            else:
                param.grad, scale = _grad_maxcos(param.data, cfg.chunk, scale, POWER)
            opt.step()
            if loss == "maxcos":
                param.data /= param.data.norm(dim=1, keepdim=True)
            if bar is not None:
                bar.update(1)
        seconds = time.perf_counter() - start
        stats = angle_stats(param.data, cfg.chunk)
    if bar is not None:
        bar.close()
    return OrthoRun(loss, stats, seconds, cfg.steps, param.data)


def run(cfg: OrthoConfig, progress: bool = False) -> tuple[AngleStats, list[OrthoRun]]:
    """The random start's statistics, then each of ``cfg.losses`` optimised from that same start."""
    V0 = random_unit_vectors(cfg.n, cfg.dim, cfg.seed)
    with flush_denormals():
        random_stats = angle_stats(V0, cfg.chunk)
    return random_stats, [optimise(cfg, name, V0, progress) for name in cfg.losses]
