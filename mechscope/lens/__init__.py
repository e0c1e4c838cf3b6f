"""Lenses: read every residual row of a prompt through the unembedding (logit lens) or through learned
per-layer translators first (tuned lens).

    >>> from mechscope.lens import logit_lens                                     # doctest: +SKIP
    >>> res = logit_lens(model, "The reliability of Wikipedia is very")          # doctest: +SKIP
    >>> print(res.table())                                                       # doctest: +SKIP

Modules: ``rows`` (which snapshots), ``stream`` (chunked statistics), ``logit`` (the lens), ``result``
(LensResult), ``tuned`` (TunedLens: translators, save/load), ``config`` / ``train`` / ``evaluate`` (tuned-lens
training and held-out KL). The tour's walkthrough is :mod:`mechscope.tour.lens`. Imports are lazy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "logit_lens": "mechscope.lens.logit",
    "tuned_lens": "mechscope.lens.logit",
    "LensResult": "mechscope.lens.result",
    "Row": "mechscope.lens.rows",
    "lens_rows": "mechscope.lens.rows",
    "TunedLens": "mechscope.lens.tuned",
    "load_tuned_lens": "mechscope.lens.tuned",
    "default_lens_dir": "mechscope.lens.tuned",
    "TunedLensTrainConfig": "mechscope.lens.config",
    "train_tuned_lens": "mechscope.lens.train",
    "evaluate_lenses": "mechscope.lens.evaluate",
}

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.lens.evaluate import evaluate_lenses
    from mechscope.lens.logit import logit_lens, tuned_lens
    from mechscope.lens.result import LensResult
    from mechscope.lens.rows import Row, lens_rows
    from mechscope.lens.config import TunedLensTrainConfig
    from mechscope.lens.train import train_tuned_lens
    from mechscope.lens.tuned import TunedLens, default_lens_dir, load_tuned_lens


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mechscope.lens' has no attribute {name!r}")


__all__ = sorted(_LAZY)
