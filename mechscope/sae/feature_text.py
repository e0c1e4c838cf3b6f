"""Per-token activations of one SAE latent or one model unit (MLP neuron, residual dimension, head) on a
text you type: the "test it on your own text" box of a feature dashboard.

    >>> from mechscope.sae.feature_text import latent_text_activations, unit_text_activations  # doctest: +SKIP
    >>> latent_text_activations(model, sae, 7, "from the right").to_dict()["activations"]      # doctest: +SKIP
    >>> unit_text_activations(model, "blocks.9.mlp.hook_post", 1393, "Michael Jordan").to_dict()  # doctest: +SKIP

The text gets BOS prepended (as every other analysis does); position 0 is BOS and is reported but never
chosen as the maximum (SAEs are trained without it, and its activations are outliers on most models).
A unit is what :mod:`mechscope.attribution.top_examples` ranks: a coordinate of the hook's last axis, or
for per-head hooks a head (the norm of its vector), so these numbers match the top-examples contexts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

POSITIONS = "BOS first (position 0, never the max)"


@dataclass
class TextActivations:
    """One latent's or unit's activation at every token of a text."""

    kind: str
    """``latent`` (of an SAE) or ``unit`` (of a model hook)."""
    hook: str
    """The hook read (the SAE's input hook for a latent)."""
    index: int
    """The latent or unit index."""
    tokens: list[str]
    """The text's tokens as decoded strings, BOS first."""
    activations: Float[Tensor, " pos"]
    seconds: float = 0.0

    @property
    def max_position(self) -> int:
        """Where the activation is largest, BOS excluded (0 when the text is BOS alone)."""
        a = self.activations
        return int(a[1:].argmax()) + 1 if a.numel() > 1 else 0

    def to_dict(self) -> dict:
        a = self.activations
        return {"kind": self.kind, "hook": self.hook, "index": self.index, "tokens": self.tokens,
                "activations": [round(float(v), 5) for v in a], "max": float(a[self.max_position]),
                "max_position": self.max_position, "positions": POSITIONS, "seconds": round(self.seconds, 3)}  # fmt: skip


def _ids(model, text: str) -> Tensor:
    from mechscope.model.tokens import check_prompt

    check_prompt(text)
    return model.to_tokens(text).input_ids[0]


@torch.no_grad()
def latent_text_activations(model, sae, latent: int, text: str) -> TextActivations:
    """Latent ``latent`` of ``sae`` at every token of ``text`` (BOS prepended)."""
    from mechscope.sae.artifact import check_for_model
    from mechscope.sae.feature_weights import check_latent

    t0 = time.perf_counter()
    check_latent(latent, sae.cfg.width)
    check_for_model(sae, model)
    ids = _ids(model, text)
    hook = model.spec(sae.hook).name
    x = model.collect(ids[None], [hook], prepend_bos=False)[hook][0]  # [pos, d_in]
    acts = sae.encode(x.to(sae.W_enc.device, sae.W_enc.dtype))[:, latent].float().cpu()  # [pos]
    return TextActivations("latent", hook, latent, model.to_str_tokens(ids.tolist()), acts, time.perf_counter() - t0)


@torch.no_grad()
def unit_text_activations(model, hook: str, unit: int, text: str) -> TextActivations:
    """Unit ``unit`` of ``hook`` (a neuron at ``mlp.hook_post``, a residual dimension, a head's vector norm)
    at every token of ``text`` (BOS prepended), as :mod:`mechscope.attribution.top_examples` ranks it."""
    from mechscope.attribution.top_examples import unit_count, unit_values
    from mechscope.errors import OutOfRangeError

    t0 = time.perf_counter()
    spec = model.spec(hook)
    n_units = unit_count(model, spec.name)
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < n_units:
        raise OutOfRangeError(f"unit {unit} out of range: {spec.name} has {n_units} units (0..{n_units - 1})")
    ids = _ids(model, text)
    act = model.collect(ids[None], [spec.name], prepend_bos=False)[spec.name]
    acts = unit_values(act, spec)[0, :, unit].cpu()  # [pos]
    return TextActivations("unit", spec.name, unit, model.to_str_tokens(ids.tolist()), acts, time.perf_counter() - t0)
