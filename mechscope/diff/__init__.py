"""Model diffing: a base model against its fine-tune, per layer, through the logit lens, as a steering
vector, and with a BatchTopK crosscoder. Imports are lazy.

    >>> from mechscope.diff import diff_models, tokenize_prompts                        # doctest: +SKIP
    >>> res = diff_models(base, tuned, tokenize_prompts(base, tuned, prompts, 64))      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "DiffConfig": "mechscope.diff.activations",
    "DiffStats": "mechscope.diff.activations",
    "diff_activations": "mechscope.diff.activations",
    "DiffResult": "mechscope.diff.report",
    "diff_models": "mechscope.diff.report",
    "check_pair": "mechscope.diff.pair",
    "tokenize_prompts": "mechscope.diff.pair",
    "read_prompts": "mechscope.diff.pair",
    "lens_logits": "mechscope.diff.lens",
    "norm_gain": "mechscope.diff.lens",
    "steer_sweep": "mechscope.diff.steer",
    "Crosscoder": "mechscope.diff.crosscoder",
    "CrosscoderConfig": "mechscope.diff.crosscoder",
    "load_crosscoder": "mechscope.diff.crosscoder",
    "save_crosscoder": "mechscope.diff.crosscoder",
    "train_crosscoder": "mechscope.diff.crosscoder_train",
    "crosscoder_report": "mechscope.diff.crosscoder_train",
    # the fine-tune to diff (docs/diffing.md, "Fine-tune"); the function is mechscope.diff.finetune.finetune
    # (the submodule of that name shadows a package attribute once imported)
    "FinetuneResult": "mechscope.diff.finetune",
    "cached_theme_model": "mechscope.diff.finetune",
    "read_record": "mechscope.diff.finetune",
    "FinetuneConfig": "mechscope.diff.finetune_config",
    "THEMES": "mechscope.diff.themes",
    "NEUTRAL_PROMPTS": "mechscope.diff.themes",
    "theme_documents": "mechscope.diff.themes",
    "theme_mass": "mechscope.diff.themes",
    "LoRA": "mechscope.diff.lora",
}

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.diff.activations import DiffConfig, DiffStats, diff_activations
    from mechscope.diff.crosscoder import Crosscoder, CrosscoderConfig, load_crosscoder, save_crosscoder
    from mechscope.diff.crosscoder_train import crosscoder_report, train_crosscoder
    from mechscope.diff.lens import lens_logits, norm_gain
    from mechscope.diff.pair import check_pair, read_prompts, tokenize_prompts
    from mechscope.diff.report import DiffResult, diff_models
    from mechscope.diff.steer import steer_sweep
    from mechscope.diff.finetune import FinetuneResult, cached_theme_model, read_record
    from mechscope.diff.finetune_config import FinetuneConfig
    from mechscope.diff.lora import LoRA
    from mechscope.diff.themes import NEUTRAL_PROMPTS, THEMES, theme_documents, theme_mass


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mechscope.diff' has no attribute {name!r}")


__all__ = sorted(_LAZY)
