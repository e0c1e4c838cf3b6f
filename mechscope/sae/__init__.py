"""Sparse autoencoders end to end: activation store → SAE / transcoder → evaluation → features → steering.

    >>> import mechscope
    >>> from mechscope import sae                                                       # doctest: +SKIP
    >>> model = mechscope.load("gemma-3-270m")                                          # doctest: +SKIP
    >>> s = sae.load("runs/sae-l6", model)                                              # doctest: +SKIP
    >>> f = s.encode(model.collect("Hello there", "blocks.6.hook_resid_post")["blocks.6.hook_resid_post"])

Modules, one concept each: ``config`` (SAEConfig, SAETrainConfig), ``base`` (the SAE module),
``relu`` / ``topk`` / ``batchtopk`` / ``jumprelu`` (architectures), ``sparse`` (sparse training
kernels), ``artifact`` (mechscope layout, load any layout), ``formats`` (SAELens, sparsify, Gemma
Scope), ``store`` (activation store: harvest and read), ``train`` (training several SAEs in one pass,
checkpoints, data parallel), ``evaluate`` (L0, FVU, dead latents, loss recovered), ``features``
(density, top contexts, logits, neighbours), ``sweep`` (widths at matched L0, feature splitting).
Imports are lazy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "SAE": "mechscope.sae.base",
    "SAEConfig": "mechscope.sae.config",
    "SAETrainConfig": "mechscope.sae.config",
    "load": "mechscope.sae.artifact",
    "save": "mechscope.sae.artifact",
    "build": "mechscope.sae.artifact",
}

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.sae.artifact import build, load, save
    from mechscope.sae.base import SAE
    from mechscope.sae.config import SAEConfig, SAETrainConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mechscope.sae' has no attribute {name!r}")


__all__ = sorted(_LAZY)
