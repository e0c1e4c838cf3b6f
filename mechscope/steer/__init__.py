"""Steering: edit the model along a direction and watch what it says.

``feature`` steers with one SAE latent (a dose sweep of ``add`` or ``clamp``), ``latent`` holds the
edits themselves (an :class:`~mechscope.model.interventions.Add` of the decoder row, and the
spliced-SAE clamp hook). ``vector`` makes steering vectors from two contrasting prompt sets (difference
of means, PCA of paired differences) and ``apply`` adds them with a coefficient sweep. Imports are lazy.

    >>> from mechscope.steer import steer_latent                                          # doctest: +SKIP
    >>> steer_latent(model, sae, 7, "I think that", values=[0, 100], mode="clamp").to_dict()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "steer_latent": "mechscope.steer.feature",
    "SteerResult": "mechscope.steer.feature",
    "Dose": "mechscope.steer.feature",
    "LatentClamp": "mechscope.steer.latent",
    "add_intervention": "mechscope.steer.latent",
    "SteeringVector": "mechscope.steer.vector",
    "make_vector": "mechscope.steer.vector",
    "load_vector": "mechscope.steer.vector",
    "apply_vector": "mechscope.steer.apply",
    "VectorResult": "mechscope.steer.apply",
    "CoefResult": "mechscope.steer.apply",
    "builtin_set": "mechscope.steer.builtin",
}

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.steer.feature import Dose, SteerResult, steer_latent
    from mechscope.steer.apply import CoefResult, VectorResult, apply_vector
    from mechscope.steer.builtin import builtin_set
    from mechscope.steer.latent import LatentClamp, add_intervention
    from mechscope.steer.vector import SteeringVector, load_vector, make_vector


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mechscope.steer' has no attribute {name!r}")


__all__ = sorted(_LAZY)
