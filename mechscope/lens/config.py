"""How a tuned lens is trained: one frozen config, the same object for the Python API, the CLI's flags
(:mod:`mechscope.cli.config_args`) and the ``train`` entry of a saved lens. Imports no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from mechscope.data.corpus import CorpusConfig
from mechscope.errors import ConfigError


@dataclass(frozen=True)
class TunedLensTrainConfig:
    """How a tuned lens is trained. The same object is the CLI's flags and the saved JSON's ``train``."""

    tokens: int = 204_800
    """Training tokens run through the model (BOS included); the corpus must hold that many."""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    """Text source, context length and held-out share (the held-out documents are never trained on)."""
    contexts_per_step: int = 4
    """Packed contexts per optimiser step."""
    positions_per_step: int = 64
    """Positions sampled per step (from all contexts of the step, BOS excluded); every translator trains on them."""
    translators_per_pass: int = 4
    """Translators whose unembedding runs in one matmul (memory ≈ this × positions_per_step × d_vocab × 8 bytes)."""
    lr: float = 1e-3
    """Peak Adam learning rate. (SGD with Nesterov momentum, tuned-lens' choice, diverged here at lr 1 and 1e-3:
    gradients of the translators reach ~700 in norm on Gemma 3 in the first steps.)"""
    warmup_fraction: float = 0.05
    """Share of steps with a linearly rising learning rate; it then decays linearly to 0."""
    weight_decay: float = 0.0
    """Weight decay on translator weights and biases."""
    sublayers: bool = False
    """Also train translators for the after-attention rows (``hook_resid_mid``) so ``--sublayers`` works."""
    precision: Literal["float32", "bfloat16"] = "bfloat16"
    """Precision of the unembedding matmuls during training (evaluation is always float32)."""
    seed: int = 0
    """Seeds context order and position sampling."""

    def __post_init__(self):
        if isinstance(self.corpus, dict):
            object.__setattr__(self, "corpus", CorpusConfig(**{**self.corpus, "sources": tuple(self.corpus["sources"])}))
        checks = {
            "tokens": self.tokens >= self.corpus.seq_len, "contexts_per_step": self.contexts_per_step >= 1,
            "positions_per_step": self.positions_per_step >= 1, "translators_per_pass": self.translators_per_pass >= 1,
            "lr": 0 < self.lr < 10, "warmup_fraction": 0 <= self.warmup_fraction < 1, "weight_decay": self.weight_decay >= 0,
        }  # fmt: skip
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid tuned-lens training setting {bad[0]}={getattr(self, bad[0])!r}")
        if self.positions_per_step > self.contexts_per_step * (self.corpus.seq_len - 1):
            raise ConfigError(f"positions_per_step={self.positions_per_step} exceeds the "
                              f"{self.contexts_per_step * (self.corpus.seq_len - 1)} non-BOS positions of a step")  # fmt: skip
        if self.precision not in ("float32", "bfloat16"):
            raise ConfigError(f"precision must be float32 or bfloat16, got {self.precision!r}")


    @property
    def contexts(self) -> int:
        return self.tokens // self.corpus.seq_len

    @property
    def steps(self) -> int:
        return max(1, self.contexts // self.contexts_per_step)

    def to_dict(self) -> dict:
        return {**asdict(self), "corpus": self.corpus.to_dict()}
