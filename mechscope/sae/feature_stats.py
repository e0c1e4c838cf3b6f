"""The one pass behind SAE feature dashboards: statistics of *every* latent at once, vectorised.

Fed chunks of latent activations ``f`` ``[context, pos, d_sae]`` (BOS already left out), a
:class:`FeatureAccumulator` keeps, for all latents together:

- ``hist`` ``[d_sae, bins]``: counts of ``log10`` of the positive activations in fixed bins (one
  ``bincount`` over ``latent · bins + bin`` per chunk; values beyond the range land in the end bins);
  its row sum is the number of tokens where the latent fires, so density = ``hist.sum(1) / tokens``;
- ``sum`` ``[d_sae]``: the summed positive activations (mean activation when firing = sum / fires);
- ``top``: per latent the ``k`` contexts with the largest max activation, each with its position and
  per-token activations (a running ``topk`` along the context axis, :class:`RunningSelect`);
- ``sample``: per latent a uniform random sample of the contexts where it fires (the ``n`` smallest of
  a random key per (context, latent), the same running selection with score ``-key``), which the
  dashboard sorts into activation quantile bands. Keys depend only on ``(seed, context id)``
  (:func:`sample_keys`), so the sample does not depend on how the stream is chunked.

No Python loop runs over latents; the loops are over chunks (and over a chunk's contexts to draw keys).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

CHUNK_ELEMENTS = 1 << 24
"""Latent activations per encoded chunk (64 MB of float32): contexts per chunk = this / (pos · d_sae)."""


def hist_edges(bins: int, lo: float, hi: float) -> Float[Tensor, " edges"]:
    """The ``bins + 1`` fixed bin edges in log10 space (float64)."""
    return torch.linspace(lo, hi, bins + 1, dtype=torch.float64)


def hist_bin(values: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """Bin index of positive ``values`` (log10, clamped into ``0 .. bins - 1``)."""
    step = (hi - lo) / bins
    idx = torch.floor((torch.log10(values.double()) - lo) / step)
    return idx.clamp_(0, bins - 1).long()


def sample_keys(first_context: int, n_contexts: int, width: int, seed: int) -> Float[Tensor, "context d_sae"]:
    """Uniform keys in [0, 1) for contexts ``first_context ..`` and every latent; context ``i``'s row
    depends only on ``(seed, i)``."""
    from mechscope.sae.store import hash_seed

    rows = [torch.rand(width, generator=torch.Generator().manual_seed(hash_seed(seed, first_context + i)))
            for i in range(n_contexts)]  # fmt: skip
    return torch.stack(rows)


class RunningSelect:
    """Per latent, the ``n`` contexts with the largest score seen so far (ties: the earliest), carrying
    each kept context's stream id, its max position and its per-token activations of that latent.
    Chunks must arrive in increasing context order.

    The table starts full of placeholders (score ``-inf``, context ``-1``). Per-token activations live in
    fixed *slots* ``[n, d_sae, pos]``: a merge only permutes the small ``[n, d_sae]`` rank → slot map
    and writes the entries that entered the table into the slots of those that left, so after the first
    chunks (when few contexts still beat the table) a chunk costs little beyond its ``sort``.
    """

    def __init__(self, n: int):
        self.n = n
        self.score: Tensor | None = None  # [n, d_sae], by rank
        self.context: Tensor | None = None  # [n, d_sae] int64, context ids in the stream (-1: none)
        self.position: Tensor | None = None  # [n, d_sae] int64, position of the max in the stored positions
        self.slot: Tensor | None = None  # [n, d_sae] int64, where each rank's activations are stored
        self.store: Tensor | None = None  # [n (slots), d_sae, pos]

    def _start(self, width: int, positions: int, like: Tensor) -> None:
        dev = like.device
        self.score = torch.full((self.n, width), float("-inf"), dtype=like.dtype, device=dev)
        self.context = torch.full((self.n, width), -1, dtype=torch.long, device=dev)
        self.position = torch.zeros((self.n, width), dtype=torch.long, device=dev)
        self.slot = torch.arange(self.n, device=dev).unsqueeze(1).repeat(1, width)
        self.store = torch.zeros((self.n, width, positions), dtype=like.dtype, device=dev)

    def update(self, score: Float[Tensor, "context d_sae"], first_context: int,
               position: Int[Tensor, "context d_sae"], f: Float[Tensor, "context pos d_sae"]) -> None:  # fmt: skip
        """Merge a chunk: each context's ``score`` and max ``position`` per latent, and its activations."""
        c, width = score.shape
        n = self.n
        if self.score is None:
            self._start(width, f.shape[1], f)
        # a stable sort: among equal scores the earlier context wins, so the result is the same however
        # the stream is chunked (the table is ordered by (score desc, context asc) throughout)
        new_score, idx = torch.cat([self.score, score]).sort(dim=0, descending=True, stable=True)
        new_score, idx = new_score[:n], idx[:n]  # [n, d_sae]
        entered = idx >= n
        if not bool(entered.any()):
            return
        # slots: kept entries keep theirs; entries that entered take the slots of those that left
        slot = self.slot.gather(0, idx.clamp_max(n - 1))
        used = torch.zeros_like(slot).scatter_add_(0, slot, (~entered).long()) > 0  # [slot, d_sae]
        free_first = used.long().argsort(dim=0, stable=True)  # free slots first, per latent
        new_first = (~entered).long().argsort(dim=0, stable=True)  # ranks that entered first, per latent
        rank = torch.arange(n, device=idx.device).unsqueeze(1)
        src = torch.where(rank < entered.sum(0), free_first, slot.gather(0, new_first))
        slot = slot.scatter(0, new_first, src)
        r, u = entered.nonzero(as_tuple=True)
        self.store[slot[r, u], u] = f[idx[r, u] - n, :, u]  # [entered, pos]
        ctx = torch.arange(first_context, first_context + c, device=idx.device).unsqueeze(1).expand(c, width)
        self.context = torch.cat([self.context, ctx]).gather(0, idx)
        self.position = torch.cat([self.position, position]).gather(0, idx)
        self.score, self.slot = new_score, slot

    def tables(self) -> dict[str, Tensor]:
        """``score``, ``context``, ``position`` ``[n, d_sae]`` and ``acts`` ``[n, d_sae, pos]``, by rank."""
        acts = self.store.gather(0, self.slot.unsqueeze(-1).expand(-1, -1, self.store.shape[-1]))
        return {"score": self.score, "context": self.context, "position": self.position, "acts": acts}


class FeatureAccumulator:
    """Running statistics of every latent (see the module docstring); feed :meth:`add` chunk by chunk."""

    def __init__(self, width: int, *, k: int, samples: int, bins: int, lo: float, hi: float, seed: int,
                 device: torch.device | str = "cpu"):  # fmt: skip
        self.width, self.bins, self.lo, self.hi, self.seed = width, bins, lo, hi, seed
        self.hist = torch.zeros(width * bins, dtype=torch.int64, device=device)
        self.sum = torch.zeros(width, dtype=torch.float64, device=device)
        self.top = RunningSelect(k)
        self.sample = RunningSelect(samples)
        self.tokens = 0
        self.contexts = 0

    @torch.no_grad()
    def add(self, f: Float[Tensor, "context pos d_sae"], first_context: int) -> None:
        """Fold in the latent activations of contexts ``first_context .. first_context + len(f) - 1``."""
        c, p, w = f.shape
        flat = f.reshape(-1, w)
        rows, cols = (flat > 0).nonzero(as_tuple=True)
        if rows.numel():
            vals = flat[rows, cols]
            self.hist += torch.bincount(cols * self.bins + hist_bin(vals, self.bins, self.lo, self.hi),
                                        minlength=w * self.bins)  # fmt: skip
            self.sum.index_add_(0, cols, vals.double())
        best, pos = f.max(1)  # [context, d_sae]
        self.top.update(best, first_context, pos, f)
        keys = sample_keys(first_context, c, w, self.seed).to(f.device)
        score = torch.where(best > 0, -keys, torch.full_like(keys, float("-inf")))
        self.sample.update(score, first_context, pos, f)
        self.tokens += c * p
        self.contexts = max(self.contexts, first_context + c)

    def tables(self) -> dict[str, Tensor]:
        """Every running table on the CPU, named as saved: ``hist``, ``sum``, ``top.*``, ``sample.*``."""
        out = {"hist": self.hist.reshape(self.width, self.bins), "sum": self.sum}
        for side, sel in (("top", self.top), ("sample", self.sample)):
            out.update({f"{side}.{k}": v for k, v in sel.tables().items()})
        return {k: v.cpu().contiguous() for k, v in out.items()}


def encode_chunks(sae, acts: Float[Tensor, "context pos d_in"]):
    """Yield ``(offset, f)``: the SAE's latent activations of ``acts`` in chunks of about
    :data:`CHUNK_ELEMENTS` values, ``f`` ``[chunk, pos, d_sae]`` float32 on the SAE's device."""
    c, p, _ = acts.shape
    step = max(1, CHUNK_ELEMENTS // max(1, p * sae.cfg.width))
    device = sae.W_enc.device
    for s in range(0, c, step):
        x = acts[s:s + step].to(device, torch.float32)
        yield s, sae.encode(x)
