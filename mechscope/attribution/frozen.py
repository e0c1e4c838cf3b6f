"""Norms with a frozen scale and linear modules as matrices: what makes a sum of components exact.

Direct logit attribution splits the logit difference into the residual stream's components. The final
norm (and Gemma's post-attention / post-MLP norms) divide by a scale computed from the whole vector; with
that scale **frozen at the clean run's value**, as TransformerLens' ``apply_ln_to_stack`` does, each
norm is affine and the components' contributions add up to the total exactly (to float rounding).

Everything here is read from the model's own modules by probing them (a linear module's transpose applied to a
direction is one small backward through it, its bias is its output at zero; a norm applied to a unit vector gives its gain,
``1 + w`` for Gemma included), so no adapter path or HF internals are needed. :func:`frozen_norm`
checks its reconstruction against the module's real output and refuses a norm it does not reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mechscope.errors import AttributionError


@dataclass(frozen=True)
class FrozenNorm:
    """``norm(x) ≈ centre(x) · gain / scale + bias`` with ``scale`` fixed (per position) at the clean run."""

    gain: Float[Tensor, "d_model"]
    bias: Float[Tensor, "d_model"]
    scale: Float[Tensor, "*pos 1"]
    centred: bool
    """LayerNorm subtracts the mean over d_model (a linear map too); RMSNorm does not."""

    def linear(self, x: Float[Tensor, "*pos d_model"]) -> Float[Tensor, "*pos d_model"]:
        """The norm's linear part with the frozen scale (no bias): additive over components."""
        if self.centred:
            x = x - x.mean(-1, keepdim=True)
        return x * self.gain / self.scale

    def pullback(self, direction: Float[Tensor, "*pos d_model"]) -> Float[Tensor, "*pos d_model"]:
        """The transpose of :meth:`linear`: ``linear(x)·direction == x·pullback(direction)``."""
        out = direction * self.gain / self.scale
        if self.centred:
            out = out - out.mean(-1, keepdim=True)
        return out


def _eps(module: nn.Module) -> float:
    for name in ("eps", "variance_epsilon", "epsilon"):
        value = getattr(module, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    raise AttributionError(f"cannot freeze the norm {type(module).__name__}: it has no eps attribute")


@torch.no_grad()
def frozen_norm(module: nn.Module, x: Float[Tensor, "*pos d_model"], *, check: bool = True) -> FrozenNorm:
    """Freeze ``module`` (an RMSNorm of any gain form, or a LayerNorm) at the input ``x``.

    The gain and bias are probed from the module itself, the scale computed from ``x``; with ``check``
    the affine reconstruction must equal ``module(x)`` (relative 1e-4), else :class:`AttributionError`.
    """
    d = x.shape[-1]
    eps = _eps(module)
    centred = isinstance(module, nn.LayerNorm)
    dev, dt = x.device, x.dtype
    bias = module(torch.zeros(1, d, device=dev, dtype=dt))[0].float()
    probe = torch.ones(1, d, device=dev, dtype=dt)
    if centred:  # mean 0, variance 1 (d_model is even for every supported model)
        probe[0, 1::2] = -1.0
    gain = ((module(probe)[0].float() - bias) * (1.0 + eps) ** 0.5 / probe[0].float())
    xf = x.float()
    spread = xf - xf.mean(-1, keepdim=True) if centred else xf
    scale = (spread.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    frozen = FrozenNorm(gain, bias, scale, centred)
    if check:
        real = module(x).float()
        rebuilt = frozen.linear(xf) + bias
        err = (real - rebuilt).abs().max().item()
        if err > 1e-4 * max(1.0, real.abs().max().item()):
            raise AttributionError(f"the norm {type(module).__name__} is not an RMSNorm/LayerNorm with a frozen "
                                   f"scale (reconstruction off by {err:.2g}): no exact decomposition")  # fmt: skip
    return frozen


def linear_transpose(module: nn.Module, direction: Float[Tensor, "d_out"], d_in: int, device, dtype
                     ) -> tuple[Float[Tensor, "d_in"], Float[Tensor, "d_out"]]:  # fmt: skip
    """``(W @ direction, b)`` for a linear module ``module(x) == x @ W + b`` (``nn.Linear``, GPT-2's
    ``Conv1D``): the first is the gradient of ``module(x) · direction`` (one small backward), the second
    ``module(0)``. No knowledge of the module's weight layout is needed."""
    with torch.enable_grad():
        x = torch.zeros(1, d_in, device=device, dtype=dtype, requires_grad=True)
        y = module(x)[0]
        (grad,) = torch.autograd.grad((y.float() * direction.to(y.device)).sum(), x)
    return grad[0].float(), y.detach().float()


@dataclass(frozen=True)
class Sublayers:
    """The modules of one block that DLA splits through (all Hugging Face modules of the loaded model)."""

    o_proj: nn.Module
    """Attention output projection: its input is ``attn.hook_z``."""
    attn_post_norm: nn.Module | None
    """Norm between ``o_proj`` and the residual (Gemma's post-attention norm), or None."""
    down: nn.Module
    """MLP down projection: its input is ``mlp.hook_post``."""
    mlp_post_norm: nn.Module | None
    """Norm between the down projection and the residual (Gemma's post-feedforward norm), or None."""


def sublayers(model, layer: int) -> Sublayers:
    """The one place the attribution package touches Hugging Face modules: through each hook's
    ``HookSpec.module`` (the module the hook lives on), never adapter paths. ``hook_z`` lives on the output
    projection, ``mlp.hook_post`` on the down projection; ``hook_attn_out`` / ``hook_mlp_out`` live on the
    sublayer itself (which then contains the projection) or on a post-norm after it."""

    def post(hook: str, inner: nn.Module) -> nn.Module | None:
        module = model.spec(hook).module
        return None if any(m is inner for m in module.modules()) else module

    o_proj = model.spec(f"blocks.{layer}.attn.hook_z").module
    down = model.spec(f"blocks.{layer}.mlp.hook_post").module
    return Sublayers(o_proj, post(f"blocks.{layer}.hook_attn_out", o_proj), down,
                     post(f"blocks.{layer}.hook_mlp_out", down))  # fmt: skip
