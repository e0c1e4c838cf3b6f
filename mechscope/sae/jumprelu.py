"""JumpReLU SAE (Rajamanoharan et al. 2024, Gemma Scope): ``f = z · H(z - θ)`` with a learned threshold
θ per latent, trained with an L0 penalty through straight-through estimators.

The step function H has no useful derivative in θ, so both use a rectangle kernel of width ε
(``bandwidth``) as its pseudo-derivative:

- ``∂/∂θ [z · H(z - θ)] := -(θ/ε) · K((z - θ)/ε)``, ``∂/∂z = H(z - θ)``;
- ``∂/∂θ H(z - θ) := -(1/ε) · K((z - θ)/ε)``, ``∂/∂z = 0``;

with ``K(u) = 1`` for ``|u| < 1/2``. θ is stored as ``log_threshold`` (positive by construction);
``threshold`` is exported for other layouts (Gemma Scope's ``threshold``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mechscope.sae.base import SAE, StepOut, fvu
from mechscope.sae.config import SAEConfig, SAETrainConfig


def _kernel(z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
    return (((z - theta) / bandwidth).abs() < 0.5).to(z.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, log_theta: Tensor, bandwidth: float) -> Tensor:
        theta = log_theta.exp()
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta)

    @staticmethod
    def backward(ctx, g: Tensor):
        z, theta = ctx.saved_tensors
        gz = g * (z > theta)
        # d/dtheta := -(theta/eps) K, then chain rule through theta = exp(log_theta)
        gtheta = -(theta / ctx.bandwidth) * _kernel(z, theta, ctx.bandwidth) * g
        glog = (gtheta.reshape(-1, theta.shape[-1]).sum(0) * theta)
        return gz, glog, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, log_theta: Tensor, bandwidth: float) -> Tensor:
        theta = log_theta.exp()
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        z, theta = ctx.saved_tensors
        gtheta = -(1.0 / ctx.bandwidth) * _kernel(z, theta, ctx.bandwidth) * g
        return None, gtheta.reshape(-1, theta.shape[-1]).sum(0) * theta, None


def jumprelu(z: Tensor, log_threshold: Tensor, bandwidth: float) -> Tensor:
    """``z · H(z - exp(log_threshold))`` with the straight-through gradients above."""
    return _JumpReLU.apply(z, log_threshold, bandwidth)


def step(z: Tensor, log_threshold: Tensor, bandwidth: float) -> Tensor:
    """``H(z - exp(log_threshold))`` with the straight-through threshold gradient above."""
    return _Step.apply(z, log_threshold, bandwidth)


class JumpReLUSAE(SAE):
    arch = "jumprelu"

    def __init__(self, cfg: SAEConfig, info: dict | None = None):
        super().__init__(cfg, info)
        self.log_threshold = nn.Parameter(torch.full((cfg.width,), math.log(cfg.threshold_init)))

    @property
    def threshold(self) -> Tensor:
        return self.log_threshold.exp()

    def init_weights(self, generator, sample_y=None, b_dec_init="median", sample_x=None) -> None:
        """As :meth:`SAE.init_weights`; with a sample of inputs, each latent's threshold starts at the quantile
        of its pre-activation that lets it fire on ``k / width`` of the sample (L0 starts at ``k``), never
        below ``threshold_init``: thresholds learn slowly (the L0 gradient only sees pre-activations within
        ``bandwidth`` of them), so a start at the right scale matters."""
        super().init_weights(generator, sample_y, b_dec_init)
        with torch.no_grad():
            self.log_threshold.fill_(math.log(self.cfg.threshold_init))
            x = sample_x if sample_x is not None else (sample_y if not self.cfg.transcoder else None)
            if x is not None and x.shape[0] >= 2:
                q = 1.0 - min(1.0, self.cfg.k / self.cfg.width)
                theta = torch.quantile(self.pre_acts(x.to(self.W_enc.dtype)).float(), q, dim=0)
                self.log_threshold.copy_(theta.clamp_min(self.cfg.threshold_init).log())

    def activation(self, pre: Tensor) -> Tensor:
        return pre * (pre > self.threshold)

    def train_step(self, x: Tensor, y: Tensor, tc: SAETrainConfig, dead: Tensor | None, select_dtype=None) -> StepOut:
        pre = self.pre_acts(x)
        f = jumprelu(pre, self.log_threshold, self.cfg.bandwidth)
        recon = f @ self.W_dec + self.b_dec + self.skip_out(x)
        main = fvu(y, recon)
        l0 = step(pre, self.log_threshold, self.cfg.bandwidth).sum(1).mean()
        active = f.detach() > 0
        return StepOut(recon, main + tc.l0_coeff * l0, active.nonzero()[:, 1], active.sum() / x.shape[0],
                       {"fvu": main.detach(), "l0_penalty": l0.detach()})  # fmt: skip
