"""AdamW with linear warm-up and the optional Grokfast-EMA gradient filter, with explicit state.

The state is a handful of named tensors (moments, filter, step) so a run can be checkpointed to
safetensors and resumed bit-identically, with no pickle. The update is elementwise, so seeds stacked
on a leading axis are optimised exactly as if each ran alone. ``adamw_step`` follows
``torch.optim.AdamW`` (single-tensor implementation); a test checks it against torch.

Grokfast-EMA (Lee et al. 2024, "Grokfast: Accelerated Grokking by Amplifying Slow Gradients"): keep
an exponential moving average of the gradients, ``ema = alpha * ema + (1 - alpha) * g`` (started at
the first gradient), and feed ``g + lamb * ema`` to the optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mechscope.labs.grokking.config import GrokConfig


@dataclass
class OptimizerState:
    """Mutable optimizer state: what a resume needs besides the weights."""

    step: int = 0
    """Number of updates applied so far."""
    exp_avg: dict[str, Tensor] = field(default_factory=dict)
    """AdamW first moments, per parameter."""
    exp_avg_sq: dict[str, Tensor] = field(default_factory=dict)
    """AdamW second moments, per parameter."""
    grad_ema: dict[str, Tensor] = field(default_factory=dict)
    """Grokfast slow-gradient filter (empty until the first filtered step, or when disabled)."""

    @classmethod
    def zeros_like(cls, params: dict[str, Tensor]) -> OptimizerState:
        return cls(
            step=0,
            exp_avg={n: torch.zeros_like(w) for n, w in params.items()},
            exp_avg_sq={n: torch.zeros_like(w) for n, w in params.items()},
        )

    def tensors(self) -> dict[str, Tensor]:
        """Flat name -> tensor mapping for safetensors (the step is stored separately)."""
        out = {f"exp_avg.{n}": t for n, t in self.exp_avg.items()}
        out.update({f"exp_avg_sq.{n}": t for n, t in self.exp_avg_sq.items()})
        out.update({f"grad_ema.{n}": t for n, t in self.grad_ema.items()})
        return out

    @classmethod
    def from_tensors(cls, step: int, tensors: dict[str, Tensor]) -> OptimizerState:
        state = cls(step=step)
        for key, value in tensors.items():
            group, _, name = key.partition(".")
            if group in ("exp_avg", "exp_avg_sq", "grad_ema"):
                getattr(state, group)[name] = value
        return state


@torch.no_grad()
def grokfast_filter(grads: dict[str, Tensor], state: OptimizerState, alpha: float, lamb: float) -> dict[str, Tensor]:
    """Amplify the slow component of the gradient: returns g + lamb * ema(g), updating the EMA."""
    out = {}
    for name, g in grads.items():
        ema = state.grad_ema.get(name)
        if ema is None:
            ema = state.grad_ema[name] = g.clone()
        ema.mul_(alpha).add_(g, alpha=1.0 - alpha)
        out[name] = g + lamb * ema
    return out


@torch.no_grad()
def adamw_step(params: dict[str, Tensor], grads: dict[str, Tensor], state: OptimizerState, cfg: GrokConfig) -> None:
    """One AdamW update in place, at learning rate ``cfg.lr_at(state.step)``; increments the step."""
    if cfg.grokfast:
        grads = grokfast_filter(grads, state, cfg.grokfast_alpha, cfg.grokfast_lamb)
    lr = cfg.lr_at(state.step)
    beta1, beta2 = cfg.betas
    state.step += 1
    bias1 = 1.0 - beta1**state.step
    bias2_sqrt = math.sqrt(1.0 - beta2**state.step)
    for name, w in params.items():
        g = grads[name]
        m, v = state.exp_avg[name], state.exp_avg_sq[name]
        w.mul_(1.0 - lr * cfg.weight_decay)
        m.lerp_(g, 1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = (v.sqrt() / bias2_sqrt).add_(cfg.eps)
        w.addcdiv_(m, denom, value=-lr / bias1)
