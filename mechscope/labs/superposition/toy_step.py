"""One training step of the toy models, by hand: closed-form gradients and Adam on one flat tensor.

The model is x' = ReLU(WᵀW x + b) and the loss of an instance is Σ_i I_i Σ_examples (x'_i - x_i)² / batch.
With h = W x, z = Wᵀh + b, y = ReLU(z) and g = c ⊙ (y - x) ⊙ [z > 0], c_i = 2 I_i / batch:

    ∂L/∂b = Σ_examples g        ∂L/∂W = h gᵀ + (W g) xᵀ

Inputs come as a :class:`~mechscope.labs.superposition.toy_data.CompactBatch`: the columns hold the
non-empty examples, and the ``empty`` examples left out all have x = 0, so h = 0 and y = ReLU(b); each adds
c ⊙ ReLU(b) to ∂L/∂b, I_i ReLU(b_i)² / batch to the loss, and nothing to ∂L/∂W.

Autograd builds the same step from ~25 kernels plus its graph, and ``torch.optim.Adam`` spends ~0.1 ms
a step in Python for two tiny parameters; this is ~12 kernels and :class:`FlatAdam` ~7 (the same update
as ``torch.optim.Adam``'s default, on W and b stored side by side in one tensor).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.labs.superposition.toy_data import CompactBatch


def loss_and_grads(W: Float[Tensor, "inst m n"], b: Float[Tensor, "inst n 1"], batch: CompactBatch,
                   c: Float[Tensor, "inst n 1"], grad_W: Float[Tensor, "inst m n"], grad_b: Float[Tensor, "inst n 1"],
                   with_loss: bool = False) -> Float[Tensor, " inst"] | None:  # fmt: skip
    """Write ∂L/∂W and ∂L/∂b into ``grad_W`` and ``grad_b``; return the loss per instance if ``with_loss``.

    ``c`` is 2 · importance / batch size (``[1 or inst, n, 1]``)."""
    x, empty = batch.x, batch.empty
    h = torch.bmm(W, x)  # [inst, m, cols]
    y = torch.baddbmm(b, W.transpose(1, 2), h).relu_()  # [inst, n, cols]
    err = y - x
    rb = torch.relu(b)  # the output of every left-out (empty) example
    loss = None
    if with_loss:
        loss = (err.square().sum(-1, keepdim=True).addcmul_(rb, rb, value=empty).mul_(c).sum((1, 2))).mul_(0.5)
    g = torch.ops.aten.threshold_backward(err, y, 0.0).mul_(c)  # err where y > 0 (ReLU's derivative), times c
    torch.baddbmm(torch.bmm(h, g.transpose(1, 2)), torch.bmm(W, g), x.transpose(1, 2), out=grad_W)
    torch.sum(g, -1, keepdim=True, out=grad_b).addcmul_(c, rb, value=empty)
    return loss


class FlatAdam:
    """Adam (β = 0.9, 0.999, ε = 1e-8, no weight decay) on one tensor, with the learning rate passed per step.

    Numerically ``torch.optim.Adam``'s default (single-tensor) update: m ← lerp(m, g, 1 - β₁),
    v ← β₂ v + (1 - β₂) g², p ← p - lr/(1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + ε)."""

    def __init__(self, param: Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.param, self.betas, self.eps = param, betas, eps
        self.m, self.v, self.denom = torch.zeros_like(param), torch.zeros_like(param), torch.empty_like(param)
        self.t = 0

    def step(self, grad: Tensor, lr: float) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m.lerp_(grad, 1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        torch.sqrt(self.v, out=self.denom).div_(math.sqrt(1 - b2**self.t)).add_(self.eps)
        self.param.addcdiv_(self.m, self.denom, value=-lr / (1 - b1**self.t))
