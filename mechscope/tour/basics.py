"""The tour's first sections: next-token prediction, then clamping one residual-stream coordinate.

This is the "neuron 1393" moment of the Dark Matter video, stated honestly: the edited quantity is one
coordinate of ``blocks.{layer}.hook_mlp_out`` — a direction in the residual stream that the MLP writes
to — not an MLP neuron (those live at ``mlp.hook_post``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mechscope.model.interventions import Clamp


@dataclass(frozen=True)
class TopK:
    tokens: list[str]
    ids: list[int]
    probs: list[float]


@dataclass(frozen=True)
class ClampResult:
    prompt: str
    hook: str
    dim: int
    observed_max: float
    """Largest |value| of that coordinate over the prompt's positions."""
    value: float
    """The clamped value (± about twice the observed maximum)."""
    before: TopK
    after: dict[str, TopK]
    """'+' and '−' clamps."""

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "hook": self.hook, "dim": self.dim, "observed_max": self.observed_max,
                "value": self.value, "before": vars(self.before), "after": {k: vars(v) for k, v in self.after.items()}}  # fmt: skip


def top_k(model, logits: torch.Tensor, k: int = 10) -> TopK:
    probs = logits.float().softmax(-1)
    p, i = probs.topk(k)
    ids = i.tolist()
    return TopK(model.to_str_tokens(ids), ids, [round(x, 6) for x in p.tolist()])


def clamp_demo(model, prompt: str, layer: int | None = None, dim: int | None = None, k: int = 10,
               factor: float = 2.0) -> ClampResult:  # fmt: skip
    """Pick (or take) a coordinate of ``hook_mlp_out`` at a middle layer, clamp it at every position to
    ``±factor × observed max`` and return the next-token top-k before and after."""
    layer = model.cfg.n_layers // 2 if layer is None else layer
    hook = f"blocks.{layer}.hook_mlp_out"
    logits, cache = model.run_with_cache(prompt, names=[hook])
    acts = cache[hook][0]  # [pos, d_model]
    if dim is None:  # the coordinate the MLP writes most strongly at the last position
        dim = int(acts[-1].abs().argmax())
    observed = float(acts[:, dim].abs().max())
    value = round(factor * observed, 2)
    after = {}
    for sign, v in (("+", value), ("−", -value)):
        edited = model(prompt, interventions=[Clamp(hook, dims=[dim], min=v, max=v)])
        after[sign] = top_k(model, edited[0, -1], k)
    return ClampResult(prompt, hook, dim, observed, value, top_k(model, logits[0, -1], k), after)
