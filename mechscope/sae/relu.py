"""ReLU SAE with the decoder-norm-weighted L1 penalty (Anthropic, "Towards Monosemanticity" and its
April 2024 update): ``loss = FVU + l1_coeff · mean_t Σ_i f_ti ‖W_dec[i]‖ / σ``, where σ² is the batch's
mean squared deviation of the target per token, so the coefficient does not depend on the activation
scale. Decoder rows are free (the penalty, not a constraint, keeps their norms in check)."""

from __future__ import annotations

from torch import Tensor

from mechscope.sae.base import SAE, StepOut, fvu
from mechscope.sae.config import SAETrainConfig


class ReLUSAE(SAE):
    arch = "relu"

    def activation(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def train_step(self, x: Tensor, y: Tensor, tc: SAETrainConfig, dead: Tensor | None, select_dtype=None) -> StepOut:
        f = self.encode(x)
        recon = f @ self.W_dec + self.b_dec + self.skip_out(x)
        main = fvu(y, recon)
        scale = (y - y.mean(0)).pow(2).sum(1).mean().sqrt().clamp_min(1e-30)
        l1 = (f * self.W_dec.norm(dim=1)).sum(1).mean() / scale
        active = f.detach() > 0
        return StepOut(recon, main + tc.l1_coeff * l1, active.nonzero()[:, 1], active.sum() / x.shape[0],
                       {"fvu": main.detach(), "l1": l1.detach()})  # fmt: skip
