"""Sparse training kernels: gradients that touch only the latents that fired.

A TopK SAE of width 4096 with k = 32 uses 0.8 % of its latents per token. Autograd through
``pre.topk`` or ``pre[rows, cols]`` builds a dense ``[batch, width]`` gradient and multiplies it by the
input again (as much work as the encoder's forward). Here every gradient is a sparse product over the
``batch · k`` entries that fired:

- encoder weight: ``G^T @ x`` with ``G`` the ``[batch, width]`` CSR matrix of the entries' gradients;
- encoder bias: an index-add; ``b_dec`` (subtracted from the input): ``-W_enc @ grad(b_enc)``;
- decoder: forward an ``embedding_bag`` (gather + weighted sum), backward a sampled dense-dense product
  for the entries (``torch.sparse.sampled_addmm``) and ``V^T @ grad_out`` for the weight.

All equal the dense formulation (tested against it, values and gradients).

Selections are COO pairs ``rows`` (token, sorted) and ``cols`` (latent); :class:`Pattern` holds them with
the CSR index arrays of the ``[batch, width]`` matrix and of its transpose, built once per selection.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


class Pattern:
    """Which ``(token, latent)`` entries are active, as CSR indices of ``[batch, width]`` and its transpose."""

    def __init__(self, rows: Int[Tensor, " nnz"], cols: Int[Tensor, " nnz"], n_tokens: int, width: int):
        self.rows, self.cols, self.shape = rows, cols, (n_tokens, width)
        counts = torch.bincount(rows, minlength=n_tokens)
        ends = torch.cumsum(counts, 0)
        self.offsets = ends - counts
        """Start of each token's entries (``embedding_bag`` offsets)."""
        self.crow = torch.cat([ends.new_zeros(1), ends])
        self.perm = torch.argsort(cols, stable=True)
        self.crow_t = torch.cat([ends.new_zeros(1), torch.cumsum(torch.bincount(cols, minlength=width), 0)])
        self.rows_t = rows[self.perm]

    def csr(self, vals: Tensor) -> Tensor:
        """``[batch, width]`` with ``vals`` at the entries."""
        return torch.sparse_csr_tensor(self.crow, self.cols, vals, self.shape, check_invariants=False)

    def csr_t(self, vals: Tensor) -> Tensor:
        """``[width, batch]``: the transpose of :meth:`csr`."""
        return torch.sparse_csr_tensor(self.crow_t, self.rows_t, vals[self.perm], self.shape[::-1], check_invariants=False)


class _Encode(torch.autograd.Function):
    """``((x - b_dec) @ W_enc + b_enc)[rows, cols]`` (``b_dec`` may be None) with sparse gradients."""

    @staticmethod
    def forward(ctx, x: Tensor, b_dec: Tensor | None, W_enc: Tensor, b_enc: Tensor, vals: Tensor, pat: Pattern) -> Tensor:
        ctx.save_for_backward(x, b_dec if b_dec is not None else x.new_zeros(0), W_enc)
        ctx.has_b_dec, ctx.pat = b_dec is not None, pat
        return vals.clone()

    @staticmethod
    def backward(ctx, g: Tensor):
        x, b_dec, W_enc = ctx.saved_tensors
        pat = ctx.pat
        g_bdec = g_W = g_b = None
        if ctx.needs_input_grad[2]:
            xin = x - b_dec if ctx.has_b_dec else x
            g_W = torch.sparse.mm(pat.csr_t(g), xin).t()  # [width, batch] @ [batch, d_in] -> transposed
        if ctx.needs_input_grad[3] or ctx.needs_input_grad[1]:
            g_b = torch.zeros(W_enc.shape[1], dtype=g.dtype, device=g.device).index_add_(0, pat.cols, g)
        if ctx.needs_input_grad[1]:
            g_bdec = -(W_enc @ g_b)  # sum over tokens of d pre / d b_dec
        if ctx.needs_input_grad[0]:
            raise NotImplementedError("the input of a sparse SAE step does not take gradients")
        return None, g_bdec, g_W, g_b if ctx.needs_input_grad[3] else None, None, None


class _Decode(torch.autograd.Function):
    """Per token ``sum_j vals_j · W_dec[cols_j]`` with sparse gradients."""

    @staticmethod
    def forward(ctx, vals: Tensor, W_dec: Tensor, pat: Pattern) -> Tensor:
        ctx.save_for_backward(vals, W_dec)
        ctx.pat = pat
        return F.embedding_bag(pat.cols, W_dec, pat.offsets, mode="sum", per_sample_weights=vals)

    @staticmethod
    def backward(ctx, go: Tensor):
        vals, W_dec = ctx.saved_tensors
        pat = ctx.pat
        g_vals = g_W = None
        go = go.contiguous()
        if ctx.needs_input_grad[0]:  # <go[row], W_dec[col]> at each entry
            g_vals = torch.sparse.sampled_addmm(pat.csr(torch.zeros_like(vals)), go, W_dec.t()).values()
        if ctx.needs_input_grad[1]:
            g_W = torch.sparse.mm(pat.csr_t(vals), go)
        return g_vals, g_W, None


def encode_selected(x: Float[Tensor, "batch d_in"], b_dec: Float[Tensor, " d_in"] | None,
                    W_enc: Float[Tensor, "d_in d_sae"], b_enc: Float[Tensor, " d_sae"],
                    pre: Float[Tensor, "batch d_sae"], pat: Pattern) -> Float[Tensor, " nnz"]:  # fmt: skip
    """The pre-activations at the pattern's entries, differentiable in ``b_dec``, ``W_enc``, ``b_enc``.

    ``pre`` must equal ``(x - b_dec) @ W_enc + b_enc`` (computed without grad), in float32 or in
    bfloat16 (then the chosen values keep bf16 rounding, ~0.4 % relative: recomputing them in float32
    costs an ``nnz x d_in`` gather, more than the bf16 matmul saves); gradients are float32 either way.
    """
    vals = pre[pat.rows, pat.cols].to(x.dtype)
    return _Encode.apply(x, b_dec, W_enc, b_enc, vals.detach(), pat)


def decode_selected(vals: Float[Tensor, " nnz"], W_dec: Float[Tensor, "d_sae d_out"],
                    pat: Pattern) -> Float[Tensor, "batch d_out"]:  # fmt: skip
    """``sum_j vals_j * W_dec[cols_j]`` per token (no bias): the decoder on a sparse code."""
    return _Decode.apply(vals, W_dec, pat)


def topk_select(pre: Float[Tensor, "batch d_sae"], k: int) -> tuple[Tensor, Tensor]:
    """Rows and columns of each token's ``k`` largest pre-activations (COO, rows sorted)."""
    idx = pre.topk(k, dim=-1, sorted=False).indices
    rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(k)
    return rows, idx.reshape(-1)


def batch_topk_select(pre: Float[Tensor, "batch d_sae"], n: int) -> tuple[Tensor, Tensor]:
    """Rows and columns of the ``n`` largest pre-activations of the whole batch (COO, rows sorted)."""
    flat = pre.reshape(-1).topk(min(n, pre.numel()), sorted=False).indices.sort().values
    return flat // pre.shape[1], flat % pre.shape[1]
