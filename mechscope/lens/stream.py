"""Lens statistics without materialising [rows × positions × vocab].

For every (row, position) a lens needs a distribution over the whole vocabulary: top-k, entropy, KL
from the final distribution, and the probability and rank of a few tracked tokens (the actual next
token, user targets). Holding all logits at once costs rows·pos·vocab·4 bytes (1.27 GB for 19 × 64 ×
262k). Instead we stream over vocabulary chunks, as flash attention streams over keys: one matmul per
chunk gives a cache-sized tile of logits ``l - shift`` (the per-row shift rides in the matmul), and a
few passes over the tile update running sums:

- ``s = Σ exp(l - shift)``                 → ``logsumexp = shift + log s``
- ``t = Σ exp(l - shift)·(l - shift)``     → ``entropy = log s - t / s``
- ``#{v : l_v > l_tracked}``               → ranks of tracked tokens
- the max of every group of 16 columns     → exact top-k afterwards: the k groups with the largest
  maxima hold every top-k logit, so only those 16·k logits per row are recomputed.

KL(final ‖ lens) = lse - E_final[l] - H(final), where E_final[l] = h·(p_final @ W_U) is one small
matmul per position (with a softcap it is summed over the tiles instead).

On the CPU the vocabulary is split between worker threads, each running single-threaded torch ops on
its own tiles: many small ops under one shared thread pool wait on each other (badly so on a busy
machine), independent workers do not. The model's own logits (the last row) come from its forward
pass and are used as they are (:func:`dense_stats`).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

TILE_BYTES = 8 << 20
"""Target size of one logit tile ((row, position) pairs of a block × vocab chunk × 4 bytes)."""
MAX_BLOCK = 2048
"""Most (row, position) pairs streamed together; longer inputs are split into several blocks."""
GROUP = 16
"""Columns per group for the top-k search (group maxima first, then the k best groups)."""
RAISE_AT = 60.0
"""A tile whose ``l - shift`` exceeds this raises the row's shift (exp overflows in float32 at 88)."""


@dataclass(frozen=True)
class Stats:
    """Per (row, position) lens statistics. ``track`` indexes the tracked ids passed in."""

    top_ids: Int[Tensor, "row pos k"]
    top_probs: Float[Tensor, "row pos k"]
    entropy: Float[Tensor, "row pos"]
    """Entropy of the lens distribution, in nats."""
    kl: Float[Tensor, "row pos"]
    """KL(final ‖ lens) in nats: the final distribution's expected log-ratio."""
    track_probs: Float[Tensor, "row pos track"]
    track_ranks: Int[Tensor, "row pos track"]
    """1-based rank (1 = the lens's top token)."""

    @staticmethod
    def cat(parts: list[Stats], dim: int = 0) -> Stats:
        return Stats(*(torch.cat([getattr(p, f) for p in parts], dim) for f in Stats.__dataclass_fields__))


class Unembedding:
    """The model's unembedding (weight, optional bias, optional softcap), sliceable over the vocabulary."""

    def __init__(self, model: HookedModel):
        module = model.hf.get_submodule(model.adapter.unembed)
        self.weight: Float[Tensor, "d_vocab d_model"] = module.weight.detach()
        bias = getattr(module, "bias", None)
        self.bias = bias.detach() if bias is not None else None
        self.cap = model.cfg.logit_softcap
        self.d_vocab = self.weight.shape[0]

    def _cap(self, logits: Tensor) -> Tensor:
        if self.cap is not None:  # the same three steps as HookedModel.unembed (in place)
            logits.div_(self.cap).tanh_().mul_(self.cap)
        return logits

    def logits(self, x: Float[Tensor, "n d_model"], start: int = 0, stop: int | None = None,
               shift: Float[Tensor, "n"] | None = None) -> Float[Tensor, "n chunk"]:  # fmt: skip
        """Logits of vocabulary ids ``start:stop`` (softcapped like the model's output), minus ``shift`` per row.
        Without a softcap the shift rides in the matmul (``addmm``)."""
        stop = self.d_vocab if stop is None else stop
        w = self.weight[start:stop]
        if self.cap is None and shift is not None:
            out = torch.addmm(shift[:, None].neg(), x, w.T)
            if self.bias is not None:
                out += self.bias[start:stop]
            return out
        out = self._cap(F.linear(x, w, self.bias[start:stop] if self.bias is not None else None))
        return out.sub_(shift[:, None]) if shift is not None else out

    def gather(self, x: Float[Tensor, "n d_model"], ids: Int[Tensor, "n cand"]) -> Float[Tensor, "n cand"]:
        """Logits of a few ids per row, without the rest of the vocabulary."""
        out = torch.einsum("nd,ncd->nc", x, self.weight[ids])
        if self.bias is not None:
            out = out + self.bias[ids]
        return self._cap(out)


@torch.no_grad()
def dense_stats(logits: Float[Tensor, "pos d_vocab"], top_k: int, track_ids: Int[Tensor, "pos track"]) -> Stats:
    """Statistics of one full row of logits (the model output); KL to itself is 0."""
    logp = logits.float().log_softmax(-1)
    top_lp, top_ids = logp.topk(top_k, -1)
    entropy = -(logp.exp() * logp).sum(-1)
    tracked = logits.gather(-1, track_ids)  # [pos, track]
    ranks = 1 + torch.stack([(logits > tracked[:, j : j + 1]).sum(-1) for j in range(track_ids.shape[1])], -1)
    return Stats(top_ids[None], top_lp.exp()[None], entropy[None], torch.zeros_like(entropy)[None],
                 logp.gather(-1, track_ids).exp()[None], ranks[None])  # fmt: skip


@torch.no_grad()
def stream_stats(unembed: Unembedding, normed: Float[Tensor, "row pos d_model"], final_logits: Float[Tensor, "pos d_vocab"],
                 top_k: int, track_ids: Int[Tensor, "pos track"], chunk: int | None = None,
                 workers: int | None = None) -> Stats:  # fmt: skip
    """Statistics for every (row, position) of ``normed`` (already through the final norm).

    chunk: vocabulary chunk; None sizes a tile to :data:`TILE_BYTES`; ``d_vocab`` disables chunking.
    workers: CPU threads splitting the vocabulary (default: torch's thread count; 1 on accelerators).
    """
    n_rows, n_pos, _ = normed.shape
    final_logp = final_logits.log_softmax(-1)
    final_entropy = -(final_logp.exp() * final_logp).sum(-1)  # [pos]
    del final_logp
    if workers is None:
        workers = torch.get_num_threads() if normed.device.type == "cpu" else 1
    pos_block = min(n_pos, MAX_BLOCK)
    row_block = max(1, MAX_BLOCK // pos_block)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        parts = []
        for r0 in range(0, n_rows, row_block):
            cols = []
            for p0 in range(0, n_pos, pos_block):
                rs, ps = slice(r0, r0 + row_block), slice(p0, p0 + pos_block)
                cols.append(_block(unembed, normed[rs, ps], final_logits[ps], final_entropy[ps], top_k, track_ids[ps],
                                   chunk, pool, max(1, workers)))  # fmt: skip
            parts.append(Stats.cat(cols, dim=1))
    return Stats.cat(parts)


@contextlib.contextmanager
def _single_threaded(enabled: bool):
    previous = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class _Scan:
    """What one worker accumulated over its vocabulary range (in units of its own ``shift``)."""

    shift: Tensor  # [n]
    s: Tensor  # [n] Σ exp(l - shift)
    t: Tensor  # [n] Σ exp(l - shift)·(l - shift)
    above: Tensor  # [n, track] how many logits beat each tracked one (the token itself excluded)
    u: Tensor  # [n] softcap only: Σ p_final·(l - shift)
    group_max: list[Tensor]  # [n, groups] per chunk
    group_ids: list[tuple[int, int]]  # (chunk start, stride) per chunk: group j holds start + j + i·stride
    tail_ids: list[Tensor]  # [n, k] top ids of ragged chunks

    def rebase(self, shift: Tensor) -> None:
        """Express the sums relative to a larger ``shift``."""
        delta = shift - self.shift
        decay = torch.exp(-delta)
        self.t, self.s = decay * (self.t - delta * self.s), decay * self.s
        self.u = self.u - delta
        self.group_max = [g - delta[:, None] for g in self.group_max]
        self.shift = shift


@torch.no_grad()  # grad mode is per thread: workers need their own
def _scan(unembed: Unembedding, x: Tensor, shift: Tensor, tracked: Tensor, flat_track: Tensor, p_final: Tensor | None,
          top_k: int, start: int, stop: int, chunk: int, single_threaded: bool = False) -> _Scan:  # fmt: skip
    """Stream vocabulary ids ``start:stop`` in chunks. ``p_final`` ([pos, vocab], softcap only): x's rows are
    (row, position) pairs in row-major order."""
    n, dev = x.shape[0], x.device
    if single_threaded:  # OpenMP thread counts are per thread: a worker sets its own
        torch.set_num_threads(1)
    capped = unembed.cap is not None
    out = _Scan(shift.clone(), torch.zeros(n, device=dev), torch.zeros(n, device=dev),
                torch.zeros(tracked.shape, device=dev), torch.zeros(n, device=dev), [], [], [])  # fmt: skip
    thresholds = tracked - shift[:, None]
    weights = torch.empty((n, chunk), device=dev)
    above = torch.empty((n, chunk), dtype=torch.bool, device=dev)
    for c0 in range(start, stop, chunk):
        c1 = min(c0 + chunk, stop)
        width = c1 - c0
        logits = unembed.logits(x, c0, c1, out.shift)  # [n, width]: l - shift
        if width % GROUP == 0:  # strided groups {c0 + j + i·stride}: one vectorised max over GROUP slices
            gmax = logits.view(n, GROUP, width // GROUP).amax(1)
            out.group_max.append(gmax)
            out.group_ids.append((c0, width // GROUP))
            top = gmax.amax(-1)
        else:  # a ragged chunk: its own top-k ids become candidates
            out.tail_ids.append(logits.topk(min(top_k, width), -1).indices + c0)
            top = logits.amax(-1)
        if not capped and bool((top > RAISE_AT).any()):
            delta = torch.where(top > RAISE_AT, top, torch.zeros_like(top))
            logits -= delta[:, None]
            out.rebase(out.shift + delta)
            thresholds = thresholds - delta[:, None]
        w, gt = weights[:, :width], above[:, :width]
        torch.exp(logits, out=w)
        out.s += w.sum(-1)
        out.t += torch.linalg.vecdot(w, logits)
        if p_final is not None:
            tile = logits.view(-1, p_final.shape[0], width) * p_final[None, :, c0:c1]
            out.u += tile.sum(-1).reshape(n)
        for j in range(tracked.shape[1]):  # l > threshold, counted: exact ranks (one compare, one count)
            torch.gt(logits, thresholds[:, j : j + 1], out=gt)
            out.above[:, j] += gt.sum(-1)
        inside = (flat_track >= c0) & (flat_track < c1)
        if bool(inside.any()):  # a tracked token counted itself if its tile logit rounds above the gathered one
            own = logits.gather(-1, (flat_track - c0).clamp(0, width - 1))
            out.above -= (inside & (own > thresholds)).float()
    return out


def _block(unembed: Unembedding, normed: Float[Tensor, "row pos d_model"], final_logits: Float[Tensor, "pos d_vocab"],
           final_entropy: Float[Tensor, "pos"], top_k: int, track_ids: Int[Tensor, "pos track"], chunk: int | None,
           pool: ThreadPoolExecutor, workers: int) -> Stats:  # fmt: skip
    n_rows, n_pos, d_model = normed.shape
    n, vocab, dev = n_rows * n_pos, unembed.d_vocab, normed.device
    if chunk is None:
        chunk = max(GROUP * 16, TILE_BYTES // (4 * n) // GROUP * GROUP)
    chunk = min(chunk, vocab)
    x = normed.reshape(n, d_model)
    n_track = track_ids.shape[1]
    # reference logits: the tracked ids (next token, targets), the final top-1 and the current token
    current = torch.cat([track_ids[:1, 0], track_ids[:-1, 0]])  # tied embeddings favour it in early rows
    ref_ids = torch.cat([track_ids, final_logits.argmax(-1, keepdim=True), current[:, None]], -1)
    gathered = unembed.gather(x, ref_ids.repeat(n_rows, 1))  # [n, track + 2]
    tracked = gathered[:, :n_track]
    # Every logit is computed as l - shift. With a softcap, shift = cap bounds it (exp ≤ 1). Otherwise shift
    # starts at a logit the row really has (so s ≥ 1) and a tile that would overflow exp raises it.
    capped = unembed.cap is not None
    shift = torch.full((n,), unembed.cap, device=dev) if capped else gathered.amax(-1)
    p_final = final_logits.softmax(-1) if capped else None  # [pos, vocab], softcap only
    flat_track = track_ids.repeat(n_rows, 1)
    n_chunks = -(-vocab // chunk)
    bounds = [min(vocab, chunk * (n_chunks * i // workers)) for i in range(workers + 1)]
    ranges = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    args = (unembed, x, shift, tracked, flat_track, p_final, top_k)
    if len(ranges) == 1:
        scans = [_scan(*args, *ranges[0], chunk)]
    else:  # only the scans are single-threaded: the work around them (softmaxes, p_final @ W_U, top-k) uses every thread
        with _single_threaded(True):
            scans = list(pool.map(lambda r: _scan(*args, *r, chunk, True), ranges))
    shift = torch.stack([sc.shift for sc in scans]).amax(0)
    for sc in scans:
        sc.rebase(shift)
    s, t = sum(sc.s for sc in scans), sum(sc.t for sc in scans)
    above = sum(sc.above for sc in scans)
    top_v, top_i = _top_k(unembed, x, shift, top_k, scans)
    log_s = torch.log(s)
    entropy = log_s - t / s  # H = lse - E[l], lse = shift + log s, E[l] = shift + t/s
    lse = shift + log_s
    if capped:
        mean_final = sum(sc.u for sc in scans) + shift  # E_final[l]; Σ p_final = 1
    else:  # E_final[l] = x · (p_final @ W_U) (+ p_final · b): one [pos × vocab × d_model] matmul
        p = final_logits.softmax(-1)
        mean_final = (normed * (p @ unembed.weight)[None]).sum(-1).reshape(n)
        if unembed.bias is not None:
            mean_final = mean_final + (p @ unembed.bias).repeat(n_rows)
    kl = lse - mean_final - final_entropy.repeat(n_rows)  # KL(f ‖ q) = lse - E_f[l] - H(f)
    return Stats(
        top_i.view(n_rows, n_pos, top_k),
        # top logits are recomputed by another kernel than the tiles' sums: with logits near 10^3 (a token
        # reading itself through tied embeddings) rounding can put a near-one-hot row a hair above 1
        torch.exp(top_v - log_s[:, None]).clamp_max_(1.0).view(n_rows, n_pos, top_k),
        entropy.clamp_min(0.0).view(n_rows, n_pos),
        kl.clamp_min(0.0).view(n_rows, n_pos),
        torch.exp(tracked - lse[:, None]).clamp_max_(1.0).view(n_rows, n_pos, n_track),
        (1 + above.long()).view(n_rows, n_pos, n_track),
    )


def _top_k(unembed: Unembedding, x: Float[Tensor, "n d_model"], shift: Float[Tensor, "n"], k: int,
           scans: list[_Scan]) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Exact top-k (values as ``l - shift``) from group maxima: the k groups with the largest maxima hold
    every top-k logit (any other group's max is beaten by k logits of k distinct groups)."""
    n, dev = x.shape[0], x.device
    cands = [ids for sc in scans for ids in sc.tail_ids]
    gmax = [g for sc in scans for g in sc.group_max]
    if gmax:
        layout = [(c0, stride) for sc in scans for c0, stride in sc.group_ids]
        base = torch.cat([torch.arange(c0, c0 + stride, device=dev) for c0, stride in layout])
        step = torch.cat([torch.full((stride,), stride, device=dev) for _, stride in layout])
        all_max = torch.cat(gmax, -1)  # [n, groups]
        best = all_max.topk(min(k, all_max.shape[1]), -1).indices  # [n, k]
        offsets = torch.arange(GROUP, device=dev)
        cands.append((base[best][..., None] + step[best][..., None] * offsets).reshape(n, -1))
    cand = torch.cat(cands, -1)  # [n, candidates]
    values = torch.empty(cand.shape, device=dev)
    for r0 in range(0, n, 64):  # recompute only the candidates' logits, 64 rows at a time
        rs = slice(r0, r0 + 64)
        values[rs] = unembed.gather(x[rs], cand[rs]) - shift[rs, None]
    top_v, sel = values.topk(k, -1)
    return top_v, cand.gather(-1, sel)
