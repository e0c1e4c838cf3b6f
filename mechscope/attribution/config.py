"""Configs of the attribution analyses that the CLI builds flags from: torch-free, so ``--help`` stays instant."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from mechscope.data.corpus import CorpusConfig
from mechscope.errors import ConfigError


@dataclass(frozen=True)
class TraceConfig:
    """Settings of one causal trace."""

    samples: int = 10
    """Noise draws averaged per restored state."""
    window: int = 10
    """Layers restored together for the mlp and attn kinds (centred on the layer, clipped at the ends)."""
    noise: float = 3.0
    """Noise standard deviation in units of σ, the embedding matrix's standard deviation (scale included)."""
    seed: int = 0
    """Seed of the noise draws."""
    batch_size: int = 64
    """Rows (restored runs) per forward."""

    def __post_init__(self):
        for name in ("samples", "window", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(self.noise, (int, float)) and 0 <= self.noise < float("inf")):
            raise ConfigError(f"noise must be a finite non-negative number of σ, got {self.noise!r}")


@dataclass(frozen=True)
class TopExamplesConfig:
    """Which text is scanned and how much of each unit's ranking is kept."""

    tokens: int = 32768
    """Corpus tokens to scan (BOS included); contexts are packed to the corpus seq_len."""
    k: int = 10
    """Top and bottom contexts kept per unit."""
    batch_size: int = 32
    """Contexts per forward."""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    """The corpus (default: the offline built-in one, packed into 128-token contexts)."""

    def __post_init__(self):
        for name, low in (("tokens", 1), ("k", 1), ("batch_size", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.tokens < self.corpus.seq_len:
            raise ConfigError(f"tokens ({self.tokens}) must cover at least one context of {self.corpus.seq_len}")

    def key(self, fingerprint: str, hook: str) -> str:
        blob = json.dumps({"fp": fingerprint, "hook": hook, "tokens": self.tokens, "k": self.k,
                           "corpus": self.corpus.to_dict()}, sort_keys=True)  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
