"""LoRA (Hu et al. 2021) on a model's linear layers, without changing the model's modules.

Each adapted layer ``y = x W^T + b`` gains ``scale · (x A^T) B^T`` with ``A [rank, d_in]`` (small random)
and ``B [d_out, rank]`` (zero at the start, so training starts from the base model exactly) and
``scale = alpha / rank``. The update is added by a forward hook, inside :meth:`LoRA.attached` only: the
model's module tree, parameter names and hook points stay those of the base model. :meth:`LoRA.merge`
adds ``scale · B A`` into each weight, after which the model is a plain Hugging Face model again (and
gives the LoRA forward's outputs, up to float rounding).

Adapted: every ``nn.Linear`` (and GPT-2's ``Conv1D``, whose weight is stored transposed) under the
adapter's ``layers`` path: attention q/k/v/o and the MLP's projections.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from jaxtyping import Float
from torch import Tensor, nn


def _is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def linear_layers(root: nn.Module, prefix: str = "") -> dict[str, nn.Module]:
    """``name -> module`` for every linear layer under ``root`` (``nn.Linear`` or GPT-2's ``Conv1D``), in order."""
    return {f"{prefix}{name}": m for name, m in root.named_modules() if isinstance(m, nn.Linear) or _is_conv1d(m)}


def _dims(module: nn.Module) -> tuple[int, int]:
    """(d_in, d_out) of a linear layer."""
    if _is_conv1d(module):
        return int(module.weight.shape[0]), int(module.weight.shape[1])
    return int(module.in_features), int(module.out_features)


class LoRA(nn.Module):
    """Low-rank adapters for the given linear layers; parameters ``A.<key>`` / ``B.<key>`` (key: the layer's
    name with dots as ``__``)."""

    def __init__(self, layers: dict[str, nn.Module], rank: int, alpha: float, generator: torch.Generator | None = None):
        super().__init__()
        if not layers:
            raise ValueError("LoRA needs at least one linear layer")
        self.rank, self.alpha, self.scale = int(rank), float(alpha), float(alpha) / int(rank)
        self.layers = dict(layers)  # a plain dict: the base modules are not this module's children
        self.A = nn.ParameterDict()
        self.B = nn.ParameterDict()
        for name, module in self.layers.items():
            d_in, d_out = _dims(module)
            w = module.weight
            a = torch.randn(self.rank, d_in, generator=generator, dtype=torch.float32) / d_in**0.5
            self.A[self.key(name)] = nn.Parameter(a.to(device=w.device, dtype=w.dtype))
            self.B[self.key(name)] = nn.Parameter(torch.zeros(d_out, self.rank, device=w.device, dtype=w.dtype))

    @staticmethod
    def key(name: str) -> str:
        return name.replace(".", "__")

    def delta(self, name: str, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        """The adapter's addition to layer ``name``'s output for input ``x``."""
        k = self.key(name)
        return self.scale * nn.functional.linear(nn.functional.linear(x, self.A[k]), self.B[k])

    def weight_delta(self, name: str) -> Tensor:
        """``scale · B A`` laid out as the layer's weight (``[d_out, d_in]``; transposed for ``Conv1D``)."""
        k = self.key(name)
        d = self.scale * (self.B[k] @ self.A[k])  # [d_out, d_in]
        return d.T if _is_conv1d(self.layers[name]) else d

    @contextlib.contextmanager
    def attached(self) -> Iterator[LoRA]:
        """While inside, every adapted layer's output gains its adapter's update; hooks removed in ``finally``."""
        handles = []
        try:
            for name, module in self.layers.items():
                handles.append(module.register_forward_hook(self._hook(name)))
            yield self
        finally:
            for h in handles:
                h.remove()

    def _hook(self, name: str):
        def fn(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
            return out + self.delta(name, args[0]).to(out.dtype)

        return fn

    @torch.no_grad()
    def merge(self) -> None:
        """Add every adapter into its layer's weight (the model then computes the adapted function without hooks)."""
        for name, module in self.layers.items():
            module.weight.add_(self.weight_delta(name).to(module.weight.dtype))
