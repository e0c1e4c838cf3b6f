"""Sparse training kernels: gradients that touch only the latents that fired.

A TopK SAE of width 4096 with k = 32 uses 0.8 % of its latents per token. Autograd through
``pre.topk`` or ``pre[rows, cols]`` builds a dense ``[batch, width]`` gradient and multiplies it by the
input again (as much work as the encoder's forward); here the encoder's weight gradient is a sparse
``[width, batch] @ [batch, d_in]`` product, and the decoder is an ``embedding_bag`` (gather + weighted
sum, whose backward is an index-add). Both equal the dense formulation (tested against it, values and
gradients).

Selections are COO triples: ``rows`` (token), ``cols`` (latent), ``vals``; ``rows`` is sorted, so
``offsets`` (the first entry of each token) describe the same thing as bags for ``embedding_bag``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor


class _Selected(torch.autograd.Function):
    """``pre[rows, cols]`` where ``pre = x @ W_enc + b_enc``, with a sparse backward."""

    @staticmethod
    def forward(ctx, x: Tensor, W_enc: Tensor, b_enc: Tensor, vals: Tensor, rows: Tensor, cols: Tensor,
                offsets: Tensor) -> Tensor:  # fmt: skip
        ctx.save_for_backward(x, W_enc, rows, cols, offsets)
        return vals.clone()

    @staticmethod
    def backward(ctx, g: Tensor):
        x, W_enc, rows, cols, offsets = ctx.saved_tensors
        gx = gW = gb = None
        width = W_enc.shape[1]
        if ctx.needs_input_grad[1]:
            # [width, batch] (nnz entries) @ [batch, d_in] -> [width, d_in]
            S = torch.sparse_coo_tensor(torch.stack([cols, rows]), g, (width, x.shape[0]), check_invariants=False)
            gW = torch.sparse.mm(S, x).t()
        if ctx.needs_input_grad[2]:
            gb = torch.zeros(width, dtype=g.dtype, device=g.device).index_add_(0, cols, g)
        if ctx.needs_input_grad[0]:
            # per token: sum over its entries of g * W_enc[:, col]  (a weighted gather: embedding_bag)
            gx = F.embedding_bag(cols, W_enc.t().contiguous(), offsets, mode="sum", per_sample_weights=g)
        return gx, gW, gb, None, None, None, None


def selected_pre(x: Float[Tensor, "batch d_in"], W_enc: Float[Tensor, "d_in d_sae"], b_enc: Float[Tensor, " d_sae"],
                 pre: Float[Tensor, "batch d_sae"], rows: Int[Tensor, " nnz"],
                 cols: Int[Tensor, " nnz"], offsets: Int[Tensor, " batch"]) -> Float[Tensor, " nnz"]:  # fmt: skip
    """The pre-activations at ``(rows, cols)``, differentiable in ``x``, ``W_enc`` and ``b_enc``.

    ``rows`` must be sorted and ``offsets`` be :func:`offsets_of` them. ``pre`` must equal
    ``x @ W_enc + b_enc`` (computed without grad); when it was computed in lower
    precision to choose the latents, the chosen values are recomputed here in ``x``'s precision.
    """
    # pre computed in lower precision (bf16 matmul, fp32 accumulation) to choose the latents: its values are
    # used as they are (bf16-rounded, ~0.4 % relative); gradients are float32 regardless
    vals = pre[rows, cols].to(x.dtype)
    return _Selected.apply(x, W_enc, b_enc, vals.detach(), rows, cols, offsets)


def offsets_of(rows: Int[Tensor, " nnz"], n_tokens: int) -> Int[Tensor, " batch"]:
    """Start of each token's entries in sorted ``rows`` (the ``offsets`` of ``embedding_bag``)."""
    counts = torch.bincount(rows, minlength=n_tokens)
    return torch.cumsum(counts, 0) - counts


def sparse_decode(cols: Int[Tensor, " nnz"], vals: Float[Tensor, " nnz"], offsets: Int[Tensor, " batch"],
                  W_dec: Float[Tensor, "d_sae d_out"]) -> Float[Tensor, "batch d_out"]:  # fmt: skip
    """``sum_j vals_j * W_dec[cols_j]`` per token (no bias): the decoder on a sparse code."""
    return F.embedding_bag(cols, W_dec, offsets, mode="sum", per_sample_weights=vals)


def topk_select(pre: Float[Tensor, "batch d_sae"], k: int) -> tuple[Tensor, Tensor]:
    """Rows and columns of each token's ``k`` largest pre-activations (COO, rows sorted)."""
    idx = pre.topk(k, dim=-1, sorted=False).indices
    rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(k)
    return rows, idx.reshape(-1)


def batch_topk_select(pre: Float[Tensor, "batch d_sae"], n: int) -> tuple[Tensor, Tensor]:
    """Rows and columns of the ``n`` largest pre-activations of the whole batch (COO, rows sorted)."""
    flat = pre.reshape(-1).topk(min(n, pre.numel()), sorted=False).indices.sort().values
    return flat // pre.shape[1], flat % pre.shape[1]


def densify(rows: Tensor, cols: Tensor, vals: Tensor, n_tokens: int, width: int) -> Float[Tensor, "batch d_sae"]:
    """The dense ``[batch, width]`` code of a COO selection."""
    out = torch.zeros(n_tokens, width, dtype=vals.dtype, device=vals.device)
    out[rows, cols] = vals
    return out
