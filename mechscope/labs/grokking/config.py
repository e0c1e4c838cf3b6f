"""Configuration of a grokking run: the model shape and the training recipe.

Both are small frozen dataclasses. The same objects are the CLI flags, the saved ``config.json``
and the Python API. ``GrokConfig.paper()`` is the setup of Nanda et al. 2023 ("Progress measures for
grokking via mechanistic interpretability"); ``GrokConfig.fast()`` is the accelerated recipe
documented in docs/grokking.md (weight decay 5 instead of 1; the Grokfast-EMA gradient filter of
Lee et al. 2024 is available as an option).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from mechscope.errors import ConfigError

Operation = Literal["add", "subtract", "multiply"]
Recipe = Literal["paper", "fast", "small", "custom"]
OPERATIONS: tuple[str, ...] = ("add", "subtract", "multiply")
RECIPES: tuple[str, ...] = ("paper", "fast")
MAX_MEMORY_BYTES = 16 << 30
"""Largest run :attr:`GrokConfig.memory_bytes` accepts (a run past it is refused before it starts)."""


@dataclass(frozen=True)
class GrokModelConfig:
    """Shape of the one-layer, attention + MLP transformer (no LayerNorm, ReLU, untied embeddings)."""

    p: int = 113
    """Modulus. Inputs are tokens 0..p-1; token p is "="; the model reads "a b =" and predicts (a op b) mod p."""
    d_model: int = 128
    """Width of the residual stream."""
    n_heads: int = 4
    """Number of attention heads."""
    d_head: int = 32
    """Width of each head's query/key/value."""
    d_mlp: int = 512
    """Number of MLP neurons."""

    def __post_init__(self) -> None:
        if not isinstance(self.p, int) or self.p < 3:
            raise ConfigError(f"p must be an integer >= 3, got {self.p!r}")
        for name in ("d_model", "n_heads", "d_head", "d_mlp"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

    @property
    def d_vocab(self) -> int:
        """Input vocabulary: the p residues and "=" (token p)."""
        return self.p + 1

    @property
    def d_vocab_out(self) -> int:
        """Output vocabulary. As in the paper's code the unembedding also has a column for "=";
        it is never a label, and analyses drop it."""
        return self.p + 1

    @property
    def n_ctx(self) -> int:
        """Sequence length: "a b =". """
        return 3

    @property
    def eq_token(self) -> int:
        return self.p


@dataclass(frozen=True)
class GrokConfig:
    """How a run is trained. ``paper()`` and ``fast()`` build the two documented recipes."""

    model: GrokModelConfig = field(default_factory=GrokModelConfig)
    """Model shape (p lives here)."""
    operation: Operation = "add"
    """Which function of (a, b) mod p is learned."""
    frac_train: float = 0.3
    """Fraction of the p*p pairs used for training (split drawn from ``seed``)."""
    seed: int = 0
    """First seed: seeds ``seed .. seed+n_seeds-1`` each fix one data split and one initialisation."""
    n_seeds: int = 1
    """Number of seeds trained together in one process (stacked weights)."""
    epochs: int = 40_000
    """Full-batch steps."""
    lr: float = 1e-3
    """AdamW peak learning rate."""
    weight_decay: float = 1.0
    """AdamW decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    warmup_steps: int = 10
    """Linear warm-up: the learning rate at step t is lr * min(t / warmup_steps, 1) (step 0 has lr 0, as in the paper's code)."""
    grokfast_alpha: float = 0.0
    """Grokfast-EMA momentum of the slow-gradient filter (0 disables the filter)."""
    grokfast_lamb: float = 0.0
    """Grokfast-EMA amplification: the gradient becomes g + lamb * ema(g)."""
    n_checkpoints: int = 200
    """Evenly spaced checkpoints (plus ``n_log_checkpoints`` log-spaced ones, deduplicated)."""
    n_log_checkpoints: int = 60
    """Log-spaced checkpoints, dense in the early epochs."""
    eval_every: int = 10
    """Test loss/accuracy is logged every this many epochs (and at every checkpoint)."""
    recipe: Recipe = "custom"
    """Name of the recipe this config was built from (informational)."""

    def __post_init__(self) -> None:
        if self.operation not in OPERATIONS:
            raise ConfigError(f"operation must be one of {', '.join(OPERATIONS)}, got {self.operation!r}")
        if not (isinstance(self.frac_train, (int, float)) and 0.0 < self.frac_train < 1.0):
            raise ConfigError(f"frac must lie strictly between 0 and 1, got {self.frac_train!r}")
        n_train = int(self.frac_train * self.model.p**2)
        if n_train < 1 or n_train >= self.model.p**2:
            raise ConfigError(
                f"frac {self.frac_train} leaves an empty train or test set for p={self.model.p}"
            )
        for name, lo in (("epochs", 1), ("n_seeds", 1), ("n_checkpoints", 1), ("eval_every", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < lo:
                raise ConfigError(f"{name} must be an integer >= {lo}, got {value!r}")
        for name in ("seed", "n_log_checkpoints", "warmup_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not 0.0 <= self.grokfast_alpha < 1.0:
            raise ConfigError(f"grokfast alpha must lie in [0, 1), got {self.grokfast_alpha!r}")
        if self.grokfast_lamb < 0:
            raise ConfigError(f"grokfast lamb must be >= 0, got {self.grokfast_lamb!r}")
        need = self.memory_bytes
        if need > MAX_MEMORY_BYTES:
            raise ConfigError(
                f"this run would need about {need / 2**30:,.1f} GiB of memory (limit {MAX_MEMORY_BYTES / 2**30:.0f} GiB: "
                f"logs of {self.epochs:,} epochs, {self.model.p}² pairs, {self.n_seeds} seed(s)): ask for fewer "
                "--epochs, a smaller --p or fewer seeds"
            )

    # ----------------------------------------------------------------- recipes
    @classmethod
    def paper(cls, **overrides: Any) -> GrokConfig:
        """Nanda et al. 2023: AdamW lr 1e-3, wd 1.0, betas (0.9, 0.98), 10-step warm-up, 40k epochs."""
        return cls(**{"recipe": "paper", **overrides})

    @classmethod
    def fast(cls, **overrides: Any) -> GrokConfig:
        """Accelerated recipe: the paper's setup with weight decay 5 instead of 1 and 2,000 epochs.

        Measured on seed 0 (docs/grokking.md): test accuracy 99 % at epoch 720 instead of 7,040, with
        the same Fourier mechanism. The Grokfast-EMA filter (``grokfast_alpha``/``grokfast_lamb``,
        Lee et al. 2024) is available, but with alpha 0.98, lamb 2 it slowed grokking in this setup."""
        base = {"recipe": "fast", "epochs": 2_000, "weight_decay": 5.0}
        return cls(**{**base, **overrides})

    @classmethod
    def small(cls, **overrides: Any) -> GrokConfig:
        """A seconds-long demo on CPU (the web workbench's default run): p = 23, d_model 32, 4 heads × 8,
        d_mlp 64, 80 % of the pairs train, lr 3e-3, weight decay 2, 1,500 epochs, 40 checkpoints. The tests'
        grokking run (tests/labs/grokking/conftest.py): 99 % test accuracy near epoch 340-420, ~4 s."""
        base = {"recipe": "small", "model": GrokModelConfig(p=23, d_model=32, n_heads=4, d_head=8, d_mlp=64),
                "epochs": 1_500, "lr": 3e-3, "weight_decay": 2.0, "frac_train": 0.8, "n_checkpoints": 30,
                "n_log_checkpoints": 10}  # fmt: skip
        return cls(**{**base, **overrides})

    @classmethod
    def from_recipe(cls, recipe: str, **overrides: Any) -> GrokConfig:
        if recipe == "paper":
            return cls.paper(**overrides)
        if recipe == "fast":
            return cls.fast(**overrides)
        if recipe == "small":
            return cls.small(**overrides)
        raise ConfigError(f"unknown recipe {recipe!r}; choose paper, fast or small")

    # ----------------------------------------------------------------- derived
    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed, self.seed + self.n_seeds))

    @property
    def n_train(self) -> int:
        """Number of training pairs (the paper's ``int(frac * p * p)``)."""
        return int(self.frac_train * self.model.p**2)

    @property
    def memory_bytes(self) -> int:
        """What a run holds in memory, estimated before it starts: the per-epoch logs (float64 train
        loss/accuracy per seed and wall-clock), the evaluation schedule, the dataset and the full-batch
        activations and gradients (logits dominate: pairs × vocabulary)."""
        m, seeds = self.model, self.n_seeds
        logs = (2 * seeds + 1) * 8 * (self.epochs + 1)
        evals = (self.epochs // self.eval_every + 1 + self.n_checkpoints + self.n_log_checkpoints) * (100 + 24 * seeds)
        data = m.p**2 * 4 * 8
        acts = seeds * m.p**2 * 4 * (4 * m.d_vocab_out + 3 * m.d_mlp + 12 * m.d_model + 3 * m.n_heads * 3)
        return logs + evals + data + acts

    @property
    def grokfast(self) -> bool:
        return self.grokfast_lamb > 0 and self.grokfast_alpha > 0

    def lr_at(self, step: int) -> float:
        """Learning rate used by the update at ``step`` (0-based), as LambdaLR(min(step/warmup, 1))."""
        if self.warmup_steps == 0:
            return self.lr
        return self.lr * min(step / self.warmup_steps, 1.0)

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GrokConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"config.json has unknown fields: {', '.join(sorted(unknown))}")
        d = dict(d)
        d["model"] = GrokModelConfig(**d.get("model", {}))
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)
