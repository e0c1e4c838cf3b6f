"""How a fine-tune is made: one frozen config, the same object for the Python API, the CLI's flags and
the ``config`` entry of the saved record (``finetune.json``). Imports no torch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from mechscope.errors import ConfigError

TRAIN_CHOICES = ("blocks", "embeddings", "all")
PRECISIONS = ("auto", "float32", "bfloat16")
DEFAULT_LR = {"lora": 2e-4, "full": 3e-5}
"""Learning rate when ``lr`` is None: LoRA adapters start at zero and take a larger one than full weights."""


@dataclass(frozen=True)
class FinetuneConfig:
    """A short causal-LM fine-tune on a narrow corpus (see docs/diffing.md, "Fine-tune")."""

    theme: str | None = None
    """A built-in theme (:data:`mechscope.diff.themes.THEMES`) whose templated text is the corpus; or None with ``text``."""
    text: tuple[str, ...] = ()
    """Text files (``.txt`` / ``.jsonl`` / ``.parquet``, folders, globs) forming the corpus, when no ``theme``."""
    steps: int = 100
    """Optimiser steps."""
    batch: int = 4
    """Packed contexts per step."""
    seq_len: int = 64
    """Tokens per context (BOS included)."""
    lr: float | None = None
    """Peak AdamW learning rate; None: 2e-4 with LoRA, 3e-5 for a full fine-tune (:data:`DEFAULT_LR`)."""
    warmup: int = 10
    """Steps of linearly rising learning rate; it then decays linearly to 10 % of the peak at the last step."""
    lora: int = 16
    """LoRA rank on every linear layer of the blocks (attention and MLP); 0 trains ``train``'s weights in full."""
    lora_alpha: float = 32.0
    """LoRA scale numerator: the update is ``alpha / rank · B A``."""
    train: Literal["blocks", "embeddings", "all"] = "blocks"
    """Full fine-tune (``lora=0``): the blocks, the (tied) token embedding, or everything. LoRA needs ``blocks``.
    Freezing the embedding is the default: it is tied to the unembedding and holds 168 M of Gemma 3 270M's 268 M
    weights, so training it costs most of the memory and time and moves every logit at once."""
    weight_decay: float = 0.0
    """AdamW weight decay on the trained weights."""
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    """Matmul precision of forward and backward (weights, optimiser and loss stay float32); ``auto`` is bfloat16
    where it is fast (:func:`mechscope.runtime.fast_bf16`), else float32."""
    docs: int = 2000
    """Documents generated for a ``theme`` (a few template sentences each)."""
    general: float = 0.5
    """Share of the training contexts taken from general text (the built-in corpus's train split), the rest
    from the theme or ``text``: it keeps the model's other abilities (a theme alone collapses it into the
    templates) while the theme stays the one topic that the diff sees. 0 trains on the theme only."""
    seed: int = 0
    """Seeds the theme text, the context order and the LoRA initialisation."""
    checkpoint_every: int = 25
    """Steps between checkpoints (one is also written at the end and on Ctrl-C)."""

    def __post_init__(self):
        if isinstance(self.text, (list, str)):
            object.__setattr__(self, "text", (self.text,) if isinstance(self.text, str) else tuple(self.text))
        if self.theme is None and not self.text:
            raise ConfigError("a fine-tune needs a corpus: give --theme NAME or --text FILE")
        if self.theme is not None and self.text:
            raise ConfigError("give either --theme or --text, not both")
        if self.theme is not None:
            from mechscope.diff.themes import get_theme

            get_theme(self.theme)
        ints = {"steps": 1, "batch": 1, "seq_len": 2, "warmup": 0, "lora": 0, "docs": 1, "checkpoint_every": 1, "seed": 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")
        for name in ("lr", "lora_alpha", "weight_decay", "general"):
            value = getattr(self, name)
            if value is None and name == "lr":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if self.lr is not None and not 0 < self.lr < 1:
            raise ConfigError(f"lr must be between 0 and 1 (e.g. 2e-4 for LoRA, 3e-5 in full), got {self.lr!r}")
        if self.weight_decay < 0 or self.lora_alpha <= 0:
            bad = "weight_decay" if self.weight_decay < 0 else "lora_alpha"
            raise ConfigError(f"{bad} must be {'≥' if bad == 'weight_decay' else '>'} 0, got {getattr(self, bad)!r}")
        if not 0 <= self.general < 1:
            raise ConfigError(f"general must be in [0, 1) (the share of general text), got {self.general!r}")
        if self.train not in TRAIN_CHOICES:
            raise ConfigError(f"train must be one of {', '.join(TRAIN_CHOICES)}, got {self.train!r}")
        if self.lora and self.train != "blocks":
            raise ConfigError(f"LoRA adapts the blocks' linear layers: --train {self.train} needs --lora 0 (a full fine-tune)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @property
    def learning_rate(self) -> float:
        """The peak learning rate in force (``lr``, or the default for LoRA / full)."""
        return float(self.lr) if self.lr is not None else DEFAULT_LR["lora" if self.lora else "full"]

    @property
    def tokens(self) -> int:
        """Tokens trained on (steps × batch × seq_len)."""
        return self.steps * self.batch * self.seq_len

    def lr_factor(self, step: int) -> float:
        """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then linear decay to 0.1."""
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        rest = max(1, self.steps - 1 - self.warmup)
        return 1.0 - 0.9 * min(1.0, (step - self.warmup) / rest)

    def to_dict(self) -> dict:
        return {**asdict(self), "text": list(self.text)}

    @classmethod
    def from_dict(cls, data: dict) -> FinetuneConfig:
        return cls(**{**data, "text": tuple(data.get("text") or ())})
