"""TopK SAE (Gao et al. 2024): each token keeps its ``k`` largest pre-activations (after ReLU), with the
AuxK loss reviving dead latents.

Training runs on the sparse kernels of :mod:`mechscope.sae.sparse`: one dense encoder matmul to choose
the latents, then gradients through the ``batch·k`` chosen entries only.

AuxK: the residual ``e = y - y_hat`` (detached) is reconstructed from the top ``aux_k`` pre-activations
among dead latents; its FVU against ``e``, scaled by ``min(1, n_dead / aux_k)``, is added with
weight ``aux_coeff``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.sae import sparse
from mechscope.sae.base import SAE, StepOut, fvu
from mechscope.sae.config import SAETrainConfig


class TopKSAE(SAE):
    arch = "topk"

    def activation(self, pre: Tensor) -> Tensor:
        vals, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())

    def select(self, pre: Tensor, n_tokens: int) -> tuple[Tensor, Tensor]:
        """Rows and columns kept for training (COO)."""
        return sparse.topk_select(pre, self.cfg.k)

    def train_step(self, x: Tensor, y: Tensor, tc: SAETrainConfig, dead: Tensor | None,
                   select_dtype: torch.dtype | None = None) -> StepOut:  # fmt: skip
        n = x.shape[0]
        b_dec = None if self.cfg.transcoder else self.b_dec
        with torch.no_grad():
            xin = x if b_dec is None else x - b_dec
            if select_dtype is not None and select_dtype != xin.dtype:
                pre = torch.addmm(self.b_enc.to(select_dtype), xin.to(select_dtype), self.W_enc.to(select_dtype))
            else:
                pre = torch.addmm(self.b_enc, xin, self.W_enc)
            pat = sparse.Pattern(*self.select(pre, n), n, self.cfg.width)
        vals = sparse.encode_selected(x, b_dec, self.W_enc, self.b_enc, pre, pat).relu()
        recon = sparse.decode_selected(vals, self.W_dec, pat) + self.b_dec + self.skip_out(x)
        main = fvu(y, recon)
        loss, terms = main, {"fvu": main.detach()}
        if dead is not None and tc.aux_coeff > 0:
            n_dead = int(dead.sum())
            if n_dead:
                aux_k = min(tc.aux_k or max(1, self.cfg.d_in // 2), n_dead)
                with torch.no_grad():  # the top aux_k among the dead columns only (a gather, not a full-width topk)
                    dead_idx = dead.nonzero().squeeze(1)
                    arows, sub = sparse.topk_select(pre.index_select(1, dead_idx), aux_k)
                    apat = sparse.Pattern(arows, dead_idx[sub], n, self.cfg.width)
                avals = sparse.encode_selected(x, b_dec, self.W_enc, self.b_enc, pre, apat).relu()
                e = (y - recon).detach()
                e_hat = sparse.decode_selected(avals, self.W_dec, apat)
                aux = fvu(e, e_hat) * min(1.0, n_dead / aux_k)
                loss = loss + tc.aux_coeff * aux
                terms["auxk"] = aux.detach()
        nz = vals.detach() > 0
        return StepOut(recon, loss, pat.cols[nz], nz.sum() / n, terms, vals.detach()[nz])
