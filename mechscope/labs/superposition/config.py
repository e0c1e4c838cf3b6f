"""Configuration of the superposition lab: the toy model of superposition and the near-orthogonal vectors.

Small frozen dataclasses (STYLE.md 6): the same objects are the CLI flags (``mechscope toy ...``), the
``--json`` echo and the Python API. Validation lives in ``__post_init__`` and raises one-line
:class:`~mechscope.errors.ConfigError`\\ s.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from mechscope.errors import ConfigError

OrthoLoss = Literal["3b1b", "maxcos", "both"]

MAX_ORTHO_N_DIM = 4_000_000
"""Largest ``n * dim`` for ``toy orthogonal``: 16 MB of float32 vectors per copy (the optimiser keeps
four); the pairwise pass is chunked, but its time grows as ``n² · dim``."""
MAX_ORTHO_N = 40_000
"""Largest ``n`` for ``toy orthogonal``: ``n²/2`` pairwise cosines per step (8·10⁸ at the limit)."""


def _positive_int(name: str, value: Any, lo: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise ConfigError(f"{name} must be an integer >= {lo}, got {value!r}")


@dataclass(frozen=True)
class ToyConfig:
    """A batch of toy models of superposition, x' = ReLU(WᵀWx + b), trained at once (Elhage et al. 2022)."""

    n: int = 5
    """Number of features (the input and output size)."""
    m: int = 2
    """Hidden dimensions the features are squeezed into (m <= n)."""
    density: float = 0.05
    """Probability that a feature is non-zero in an input (1 - sparsity), in (0, 1]."""
    importance: float = 0.9
    """Importance decay: feature i has importance importance**i in the loss (1 = all equal)."""
    instances: int = 4
    """Models trained at once (one batched model; each instance has its own W, b and data)."""
    steps: int = 2_000
    """Adam steps."""
    batch: int = 1024
    """Inputs per instance per step."""
    lr: float = 1e-2
    """Adam peak learning rate (cosine decay to 0 over the steps)."""
    seed: int = 0
    """Seed of the initialisation and the data."""

    def __post_init__(self) -> None:
        for name in ("n", "m", "instances", "steps", "batch"):
            _positive_int(name, getattr(self, name))
        _positive_int("seed", self.seed, 0)
        if self.n < self.m:
            raise ConfigError(f"n (features) must be >= m (hidden dimensions), got n={self.n}, m={self.m}")
        if not (isinstance(self.density, (int, float)) and 0.0 < self.density <= 1.0):
            raise ConfigError(f"density must lie in (0, 1] (the probability a feature is present), got {self.density!r}")
        if not (isinstance(self.importance, (int, float)) and 0.0 < self.importance <= 1.0):
            raise ConfigError(f"importance decay must lie in (0, 1], got {self.importance!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")

    @property
    def sparsity(self) -> float:
        """1 - density, the paper's S."""
        return 1.0 - self.density

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OrthoConfig:
    """n unit vectors in dim dimensions, as close to pairwise perpendicular as an optimiser can push them."""

    n: int = 10_000
    """Number of vectors."""
    dim: int = 100
    """Dimension of the space."""
    loss: OrthoLoss = "both"
    """3b1b: the video's sum of relu(|v_i·v_j| - 0.01) plus a norm penalty; maxcos: a squared hinge
    relu(|cos| - τ)² on unit vectors with τ the Welch bound (it targets the worst pairs); both: each from the
    same random start."""
    steps: int = 40
    """Full-batch Adam steps per loss (every step visits all n² pairs)."""
    lr: float = 0.01
    """Adam learning rate (the video's value)."""
    seed: int = 0
    """Seed of the random starting vectors."""
    chunk: int = 256
    """Rows of the n × n cosine matrix held at once (memory: chunk · n floats)."""

    def __post_init__(self) -> None:
        for name in ("n", "dim", "chunk"):
            _positive_int(name, getattr(self, name))
        _positive_int("steps", self.steps, 0)
        _positive_int("seed", self.seed, 0)
        if self.n < 2:
            raise ConfigError(f"n must be >= 2 (angles need pairs), got {self.n}")
        if self.n * self.dim > MAX_ORTHO_N_DIM:
            raise ConfigError(f"n·dim = {self.n * self.dim:,} is too large: the limit is {MAX_ORTHO_N_DIM:,} "
                              f"(e.g. 10,000 × 400) so the vectors and the optimiser fit in memory")  # fmt: skip
        if self.n > MAX_ORTHO_N:
            raise ConfigError(f"n = {self.n:,} is too large: the limit is {MAX_ORTHO_N:,} vectors "
                              f"(every step visits n²/2 pairs)")  # fmt: skip
        if self.loss not in ("3b1b", "maxcos", "both"):
            raise ConfigError(f"loss must be 3b1b, maxcos or both, got {self.loss!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")

    @property
    def losses(self) -> tuple[str, ...]:
        return ("3b1b", "maxcos") if self.loss == "both" else (self.loss,)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RecoveryConfig:
    """One recovery sweep: toy models with m hidden dimensions and n = ratio · m features each."""

    m: int = 8
    """Hidden dimensions of every toy model."""
    ratios: tuple[int, ...] = (1, 2, 4, 8, 16)
    """Features per dimension (n = ratio · m): more means more superposition."""
    density: float = 0.03
    """Probability that each feature is present in an input."""
    arch: str = "topk"
    """SAE architecture (relu, topk, batchtopk, jumprelu)."""
    width_factor: int = 2
    """SAE latents per toy feature."""
    rows: int = 65_536
    """Hidden activations sampled to train each SAE (inputs with no feature present are dropped)."""
    toy_steps: int = 3_000
    """Adam steps of each toy model."""
    sae_tokens: int = 400_000
    """Rows the SAE trains on (repeating the sample)."""
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.ratios, int):
            object.__setattr__(self, "ratios", (self.ratios,))
        if not self.ratios or any(not isinstance(r, int) or r < 1 for r in self.ratios):
            raise ConfigError(f"ratios must be positive integers (features per dimension), got {self.ratios!r}")
        if max(self.ratios) * self.m > 4096:
            raise ConfigError(f"n = ratio · m = {max(self.ratios) * self.m} is too many features (limit 4096)")
        if self.arch not in ("relu", "topk", "batchtopk", "jumprelu"):
            raise ConfigError(f"unknown SAE architecture {self.arch!r}: choose relu, topk, batchtopk or jumprelu")
        for name in ("m", "width_factor", "rows", "toy_steps", "sae_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not 0 < self.density <= 1:
            raise ConfigError(f"density must lie in (0, 1], got {self.density!r}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "ratios": list(self.ratios)}
