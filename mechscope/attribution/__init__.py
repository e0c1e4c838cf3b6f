"""Where facts live: direct logit attribution, activation patching, causal tracing, attribution patching
and max-activating examples (docs/circuits.md). One concept per module; imported lazily."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "direct_logit_attribution": "dla", "DLAResult": "dla",
    "activation_patching": "patching", "PatchResult": "patching",
    "attribution_patching": "atp",
    "causal_trace": "tracing", "TraceResult": "tracing", "TraceConfig": "tracing", "trace_facts": "tracing",
    "FACTS": "facts", "Fact": "facts",
    "top_examples": "top_examples", "TopExamples": "top_examples", "TopExamplesConfig": "top_examples",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mechscope.attribution.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mechscope.attribution' has no attribute {name!r}")
