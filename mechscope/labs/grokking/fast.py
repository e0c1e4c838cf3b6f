"""Training fast path: the last-position logits, computed from per-step tables.

Mathematically identical to ``reference_forward(...)[:, :, -1]`` (tests check values and gradients),
but it exploits the task's structure:

* only the last position ("=") is read, and its token and position are fixed, so its query, its own
  key and value, and its residual stream are constants of the step;
* positions 0 and 1 each hold one token, so the attention score, the value-times-output (OV) vector,
  and the OV vector's images in the MLP's input space (``OV @ W_in``) and in the logits
  (``OV @ W_U``) of every (token, position) pair are tabulated once per step (``p`` rows per head);
* each example then only mixes 3 x n_heads table rows with its attention weights (a sparse matrix
  product, ``mix_rows``), and the MLP runs once per example with ``W_out @ W_U`` folded into one
  ``d_mlp x d_vocab`` matrix.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechscope.labs.grokking.model import Params


@dataclass(frozen=True)
class MixPattern:
    """Sparsity pattern of the per-example mixing matrix (and of its transpose), built once per
    batch of inputs: row ``s*batch + b`` has ``k`` entries at columns ``s*rows + index[s, b, :]``."""

    n_rows: int
    """Rows of the mixing matrix (seed * batch)."""
    n_cols: int
    """Columns (seed * table rows)."""
    crow: Tensor
    """CSR row pointers."""
    col: Tensor
    """CSR column indices."""
    perm: Tensor
    """Order of the entries in the transposed matrix (a stable argsort of ``col``)."""
    crow_t: Tensor
    """CSR row pointers of the transpose."""
    col_t: Tensor
    """CSR column indices of the transpose."""

    @classmethod
    def build(cls, index: Int[Tensor, "seed batch k"], rows_per_seed: int) -> MixPattern:
        n_seeds, batch, k = index.shape
        offset = (torch.arange(n_seeds, device=index.device) * rows_per_seed).view(n_seeds, 1, 1)
        col = (index + offset).reshape(-1)
        n_rows, n_cols = n_seeds * batch, n_seeds * rows_per_seed
        crow = torch.arange(0, n_rows * k + 1, k, device=index.device)
        perm = torch.sort(col, stable=True).indices
        counts = torch.bincount(col, minlength=n_cols)
        crow_t = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        col_t = torch.arange(n_rows, device=index.device).repeat_interleave(k)[perm]
        return cls(n_rows, n_cols, crow, col, perm, crow_t, col_t)


class _MixRows(torch.autograd.Function):
    """out = A @ table for a sparse A with a fixed pattern and differentiable values.

    Backward: d_table = A^T @ d_out, d_values = (d_out @ table^T) sampled at A's pattern (SDDMM).
    """

    @staticmethod
    def forward(ctx, values: Tensor, table: Tensor, pattern: MixPattern) -> Tensor:
        ctx.save_for_backward(values, table)
        ctx.pattern = pattern
        return _csr(pattern.crow, pattern.col, values, (pattern.n_rows, pattern.n_cols)) @ table

    @staticmethod
    def backward(ctx, d_out: Tensor):
        values, table = ctx.saved_tensors
        pat: MixPattern = ctx.pattern
        d_values = d_table = None
        if ctx.needs_input_grad[0]:
            sampled = _csr(pat.crow, pat.col, values, (pat.n_rows, pat.n_cols))
            d_values = torch.sparse.sampled_addmm(sampled, d_out.contiguous(), table.T, beta=0.0).values()
        if ctx.needs_input_grad[1]:
            transposed = _csr(pat.crow_t, pat.col_t, values[pat.perm], (pat.n_cols, pat.n_rows))
            d_table = transposed @ d_out
        return d_values, d_table, None


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


def mix_rows(
    weights: Float[Tensor, "seed batch k"],
    pattern: MixPattern,
    table: Float[Tensor, "seed rows n"],
) -> Float[Tensor, "seed batch n"]:
    """out[s, b] = sum_k weights[s, b, k] * table[s, index[s, b, k]] (``index`` is in ``pattern``).

    One sparse (CSR) product over a block-diagonal matrix of all seeds: no ``[batch, k, n]``
    intermediate is materialised, and the backward pass is a transposed CSR product plus an SDDMM.
    """
    n_seeds, batch, _ = weights.shape
    out = _MixRows.apply(weights.reshape(-1), table.reshape(pattern.n_cols, -1), pattern)
    return out.view(n_seeds, batch, -1)


def mix_index(
    a: Int[Tensor, "seed batch"], b: Int[Tensor, "seed batch"], p: int, n_heads: int
) -> Int[Tensor, "seed batch k"]:
    """Table rows each example mixes, increasing: (pos 0, head h) -> h*p + a, (pos 1, head h) ->
    H*p + h*p + b, (pos 2, head h) -> 2*H*p + h."""
    heads = torch.arange(n_heads, device=a.device)
    return torch.cat(
        [
            heads * p + a[..., None],
            n_heads * p + heads * p + b[..., None],
            (2 * n_heads * p + heads).expand(*a.shape, n_heads),
        ],
        dim=-1,
    )


@dataclass(frozen=True)
class FastBatch:
    """A fixed set of inputs prepared for ``fast_logits`` (the full training batch, built once)."""

    a: Int[Tensor, "seed batch"]
    """First operand per seed."""
    b: Int[Tensor, "seed batch"]
    """Second operand per seed."""
    pattern: MixPattern
    """Sparsity pattern of the attention mixing (depends only on a, b, p and n_heads)."""

    @classmethod
    def build(cls, a: Tensor, b: Tensor, p: int, n_heads: int) -> FastBatch:
        index = mix_index(a, b, p, n_heads)
        return cls(a, b, MixPattern.build(index, rows_per_seed=(2 * p + 1) * n_heads))


@dataclass(frozen=True)
class SeedChunks:
    """The inputs of every seed, split into groups of seeds that run one after the other.

    On a CPU one seed per group is fastest (measured: four stacked seeds took 5.0x one seed's step,
    four one-seed groups 4.1x; the stacked tensors fall out of cache); on a GPU one group of all seeds
    amortises kernel launches. The result is the same either way, and with one seed per group each
    seed's numbers are bit-identical to training it alone.
    """

    chunks: tuple[tuple[slice, FastBatch], ...]
    """(seeds of the group, their prepared inputs)."""

    @classmethod
    def build(cls, a: Tensor, b: Tensor, p: int, n_heads: int, seeds_per_chunk: int) -> SeedChunks:
        n = a.shape[0]
        spans = [slice(i, min(i + seeds_per_chunk, n)) for i in range(0, n, seeds_per_chunk)]
        return cls(tuple((sl, FastBatch.build(a[sl], b[sl], p, n_heads)) for sl in spans))


def chunked_logits(params: Params, chunks: SeedChunks) -> Float[Tensor, "seed batch d_vocab"]:
    """``fast_logits`` of every seed, one group of seeds at a time."""
    if len(chunks.chunks) == 1:
        return fast_logits(params, chunks.chunks[0][1])
    return torch.cat([fast_logits({n: w[sl] for n, w in params.items()}, batch) for sl, batch in chunks.chunks])


def _flush_this_thread() -> None:
    # a pool worker's own thread, discarded at close(): nothing to restore
    torch.set_flush_denormal(True)


class SeedPool:
    """Runs the seed groups of a :class:`SeedChunks` on several CPU threads at once.

    Each group's forward and backward run whole on one worker thread (torch releases the GIL inside
    its kernels), with one intra-op thread per worker, so a group computes exactly what it computes
    alone on one thread: every seed's numbers stay bit-identical to training it alone with
    ``--threads 1``. This is how four seeds use two cores without OpenMP threads waiting on each other
    (which is what made two intra-op threads slower than one on a busy 2-core machine).
    """

    def __init__(self, workers: int, flush_denormals: bool = True):
        """``flush_denormals``: each worker thread flushes subnormal floats to zero for its whole life
        (the flag is per thread; see ``mechscope.runtime.flush_denormals``)."""
        from concurrent.futures import ThreadPoolExecutor

        init = _flush_this_thread if flush_denormals else None
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="mechscope-seed", initializer=init)

    def close(self) -> None:
        self._pool.shutdown()

    def loss_and_grads(
        self, params: Params, chunks: SeedChunks, labels: Tensor, grad: bool
    ) -> tuple[Float[Tensor, " seed"], Float[Tensor, " seed"], dict[str, Tensor] | None]:
        """Per-seed loss and accuracy, and (``grad``) the gradient of the summed loss for every weight."""
        from mechscope.labs.grokking.model import PARAM_NAMES, loss_and_accuracy

        def one(sl: slice, batch: FastBatch):
            leaves = {n: w[sl].detach().requires_grad_(grad) for n, w in params.items()}
            with torch.set_grad_enabled(grad):
                loss, acc = loss_and_accuracy(fast_logits(leaves, batch), labels[sl])
            grads = torch.autograd.grad(loss.sum(), [leaves[n] for n in PARAM_NAMES]) if grad else None
            return loss.detach(), acc, grads

        parts = list(self._pool.map(lambda job: one(*job), chunks.chunks))
        loss = torch.cat([pt[0] for pt in parts])
        acc = torch.cat([pt[1] for pt in parts])
        if not grad:
            return loss, acc, None
        grads = {n: torch.cat([pt[2][i] for pt in parts]) for i, n in enumerate(PARAM_NAMES)}
        return loss, acc, grads


def fast_logits(params: Params, batch: FastBatch) -> Float[Tensor, "seed batch d_vocab"]:
    """Logits at the "=" position for the inputs "a b =" of ``batch``, one row per seed."""
    return fast_forward(params, batch)[0]


def fast_forward(
    params: Params, batch: FastBatch
) -> tuple[Float[Tensor, "seed batch d_vocab"], Float[Tensor, "seed batch d_mlp"]]:
    """Logits and MLP neuron activations (``blocks.0.mlp.hook_post``) at the "=" position."""
    a, b = batch.a, batch.b
    W_E, W_pos, W_U = params["W_E"], params["W_pos"], params["W_U"]
    W_Q, W_K, W_V, W_O = params["W_Q"], params["W_K"], params["W_V"], params["W_O"]
    W_in, b_in, W_out, b_out = params["W_in"], params["b_in"], params["W_out"], params["b_out"]
    p = W_E.shape[1] - 1  # the last input token is "="
    n_heads, d_head, d_mlp = W_Q.shape[1], W_Q.shape[-1], W_in.shape[-1]

    # Residual stream entering the block, per (token, position).
    x0 = W_E[:, :p] + W_pos[:, 0:1]  # [seed p d_model]: token at position 0
    x1 = W_E[:, :p] + W_pos[:, 1:2]  # [seed p d_model]: token at position 1
    x2 = W_E[:, p] + W_pos[:, 2]  # [seed d_model]: "=" at position 2 (constant)

    # Attention scores of the "=" query against each (token, position) key.
    q2 = torch.einsum("sd,shde->she", x2, W_Q) / math.sqrt(d_head)  # [seed head d_head]
    k_q = torch.einsum("shde,she->shd", W_K, q2)  # score(x) = x . (W_K q)
    score0 = torch.einsum("std,shd->sht", x0, k_q)  # [seed head p]
    score1 = torch.einsum("std,shd->sht", x1, k_q)  # [seed head p]
    score2 = torch.einsum("sd,shd->sh", x2, k_q)  # [seed head]

    # What each head writes when it attends to each (token, position): OV, then read by W_in and W_U.
    W_OV = torch.einsum("shde,shef->shdf", W_V, W_O)  # [seed head d_model d_model]
    ov = torch.cat(
        [
            torch.einsum("std,shdf->shtf", x0, W_OV).flatten(1, 2),  # rows h*p + a
            torch.einsum("std,shdf->shtf", x1, W_OV).flatten(1, 2),  # rows H*p + h*p + b
            torch.einsum("sd,shdf->shf", x2, W_OV),  # rows 2*H*p + h
        ],
        dim=1,
    )  # [seed rows d_model]
    table = torch.cat([ov @ W_in, ov @ W_U], dim=-1)  # [seed rows d_mlp+d_vocab]

    # Per example: the attention weights of every head over the three positions.
    s0 = score0.gather(2, a[:, None].expand(-1, n_heads, -1))  # [seed head batch]
    s1 = score1.gather(2, b[:, None].expand(-1, n_heads, -1))
    s2 = score2[:, :, None].expand_as(s0)
    attn = torch.stack([s0, s1, s2], dim=1).softmax(dim=1)  # [seed pos head batch]
    weights = attn.permute(0, 3, 1, 2).reshape(a.shape[0], a.shape[1], 3 * n_heads)
    # split (not slicing): its backward concatenates, where two slices would each zero-fill a full copy
    mixed_pre, mixed_out = mix_rows(weights, batch.pattern, table).split([d_mlp, table.shape[-1] - d_mlp], dim=-1)

    # MLP once per example; logits = direct path + MLP through W_L = W_out @ W_U.
    pre = mixed_pre + (torch.einsum("sd,sdm->sm", x2, W_in) + b_in)[:, None]
    post = torch.relu(pre)  # [seed batch d_mlp]
    direct = mixed_out + torch.einsum("sd,sdv->sv", x2 + b_out, W_U)[:, None]
    W_L = W_out @ W_U  # [seed d_mlp d_vocab]
    return torch.baddbmm(direct, post, W_L), post
