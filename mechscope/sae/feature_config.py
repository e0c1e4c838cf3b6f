"""Settings of the SAE feature pass (:mod:`mechscope.sae.features`): torch-free, so the CLI's
``--help`` stays instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from mechscope.data.corpus import CorpusConfig
from mechscope.errors import ConfigError

VERSION = 1
"""Format version of the cached statistics (part of the cache key)."""


@dataclass(frozen=True)
class FeaturesConfig:
    """How the statistics pass runs and how much of each latent it keeps."""

    tokens: int = 65536
    """Corpus tokens to run through the model when no store is given (BOS included). A store is read whole."""
    k: int = 16
    """Top activating contexts kept per latent."""
    samples: int = 24
    """Firing contexts sampled uniformly per latent (shown in activation quantile bands)."""
    hist_bins: int = 80
    """Bins of the log10-activation histogram."""
    hist_min: float = -4.0
    """Lowest log10 activation binned (smaller positive values count in the first bin)."""
    hist_max: float = 4.0
    """Highest log10 activation binned (larger values count in the last bin)."""
    batch_contexts: int = 16
    """Contexts per model forward (corpus source)."""
    split: Literal["train", "heldout", "all"] = "all"
    """Which corpus documents are run (corpus source)."""
    seed: int = 0
    """Seed of the context sample."""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    """The corpus when no store is given (default: the offline built-in one, 128-token contexts)."""

    def __post_init__(self):
        for name in ("tokens", "k", "samples", "hist_bins", "batch_contexts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not self.hist_min < self.hist_max:
            raise ConfigError(f"hist_min ({self.hist_min}) must be below hist_max ({self.hist_max})")
        if self.tokens < self.corpus.seq_len:
            raise ConfigError(f"tokens ({self.tokens}) must cover at least one context of {self.corpus.seq_len}")

    def to_dict(self) -> dict:
        return {**asdict(self), "corpus": self.corpus.to_dict()}

    def pass_settings(self, from_store: bool) -> dict:
        """The settings the statistics depend on (the corpus ones only without a store)."""
        d = {k: v for k, v in self.to_dict().items() if k != "batch_contexts"}
        if from_store:
            for k in ("tokens", "split", "corpus"):
                d.pop(k)
        return d
