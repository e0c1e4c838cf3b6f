"""BatchTopK SAE (Bussmann et al. 2024): the batch keeps its ``k · batch`` largest pre-activations, so
tokens share the budget (hard tokens get more latents, easy ones fewer); the average L0 is ``k``.

At inference a batch is not available, so the SAE acts as a JumpReLU with one threshold: the running
mean, over training batches, of the smallest activation kept. It is saved per latent (``threshold``),
so the file also loads as a JumpReLU SAE. Training shares TopK's sparse kernels and AuxK.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.sae import sparse
from mechscope.sae.config import SAEConfig, SAETrainConfig
from mechscope.sae.topk import TopKSAE

THRESHOLD_MOMENTUM = 0.99
"""Weight of the running threshold against each new batch's minimum kept activation."""


class BatchTopKSAE(TopKSAE):
    arch = "batchtopk"

    def __init__(self, cfg: SAEConfig, info: dict | None = None):
        super().__init__(cfg, info)
        self.register_buffer("threshold", torch.zeros(cfg.width))
        self.register_buffer("threshold_steps", torch.zeros((), dtype=torch.int64))

    def activation(self, pre: Tensor) -> Tensor:
        return pre * (pre > self.threshold)

    def select(self, pre: Tensor, n_tokens: int) -> tuple[Tensor, Tensor]:
        return sparse.batch_topk_select(pre, self.cfg.k * n_tokens)

    def train_step(self, x: Tensor, y: Tensor, tc: SAETrainConfig, dead: Tensor | None,
                   select_dtype: torch.dtype | None = None):  # fmt: skip
        out = super().train_step(x, y, tc, dead, select_dtype)
        if out.kept is not None and out.kept.numel():
            with torch.no_grad():
                kept = out.kept.min()
                if int(self.threshold_steps):
                    kept = THRESHOLD_MOMENTUM * self.threshold[0] + (1 - THRESHOLD_MOMENTUM) * kept
                self.threshold.fill_(float(kept))
                self.threshold_steps += 1
        return out

    def extra_tensors(self) -> dict[str, Tensor]:
        return {"threshold": self.threshold.detach().clone(), "threshold_steps": self.threshold_steps.clone()}

    def load_extra(self, tensors: dict[str, Tensor]) -> None:
        if "threshold" in tensors:
            self.threshold.copy_(tensors["threshold"])
        if "threshold_steps" in tensors:
            self.threshold_steps.copy_(tensors["threshold_steps"])
