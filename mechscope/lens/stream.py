"""Lens statistics without materialising [rows × positions × vocab].

For every (row, position) a lens needs a distribution over the whole vocabulary: top-k, entropy, KL
from the final distribution, and the probability and rank of a few tracked tokens (the actual next
token, user targets). Holding all logits at once costs rows·pos·vocab·4 bytes (1.27 GB for 19 × 64 ×
262k). Instead we stream over vocabulary chunks, as flash attention streams over keys: one matmul per
chunk gives a cache-sized tile of logits ``l - shift`` (the per-row shift rides in the matmul), and a
few passes over the tile update running sums:

- ``s = Σ exp(l - shift)``                 → ``logsumexp = shift + log s``
- ``t = Σ exp(l - shift)·(l - shift)``     → ``entropy = log s - t / s``
- ``u = Σ p_final·l``                      → ``KL(final ‖ lens) = logsumexp - u - H(final)``
- ``#{v : l_v > l_tracked}``               → ranks of tracked tokens
- the max of every group of 16 columns     → exact top-k afterwards: the k groups with the largest
  maxima hold every top-k logit, so only those 16·k logits per row are recomputed.

Tiles are kept in bits, ``(l - shift)·log2 e``, so the exponentials are ``exp2``: on CPU torch's
``exp`` is ~4× slower than ``exp2`` and 10–30× slower still on inputs that underflow, which the early
rows are full of (a token reading itself through tied embeddings sits hundreds of nats above the rest).
Workers also flush denormals to zero. Everything is converted back to nats at the end.

On the CPU the vocabulary is split between worker threads, each running single-threaded torch ops on
its own tiles: many small ops under one shared thread pool wait on each other (badly so on a busy
machine), independent workers do not. The model's own logits (the last row) come from its forward
pass and are used as they are (:func:`dense_stats`).
"""

from __future__ import annotations

import contextlib
import math
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
"""A tile whose ``l - shift`` (nats) exceeds this raises the row's shift (exp overflows in float32 at 88)."""
LOG2E = 1.0 / math.log(2.0)
"""Bits per nat: tiles hold ``(l - shift)·LOG2E``."""


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

    def prescale(self, x: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_model"]:
        """The input :meth:`bits` takes: without a softcap ``x·log2 e`` (the scale rides in the matmul)."""
        return x if self.cap is not None else x * LOG2E

    def bits(self, xs: Float[Tensor, "n d_model"], start: int, stop: int,
             shift: Float[Tensor, "n"]) -> Float[Tensor, "n chunk"]:  # fmt: skip
        """``(l - shift)·log2 e`` for vocabulary ids ``start:stop`` (softcapped like the model's output),
        with ``shift`` in bits and ``xs`` from :meth:`prescale`. Without a softcap it is one ``addmm``."""
        w = self.weight[start:stop]
        bias = self.bias[start:stop] if self.bias is not None else None
        if self.cap is None:
            out = torch.addmm(shift[:, None].neg(), xs, w.T)
            return out.add_(bias, alpha=LOG2E) if bias is not None else out
        return self._cap(F.linear(xs, w, bias)).mul_(LOG2E).sub_(shift[:, None])

    def gather(self, x: Float[Tensor, "n d_model"], ids: Int[Tensor, "n cand"],
               block: int = 16) -> Float[Tensor, "n cand"]:  # fmt: skip
        """Logits of a few ids per row, without the rest of the vocabulary: ``block`` rows at a time, their
        weight rows gathered into one reused buffer (a fresh one per block costs page faults)."""
        n, n_ids = ids.shape
        out = torch.empty((n, n_ids), dtype=x.dtype, device=x.device)
        buf = torch.empty((min(n, block) * n_ids, self.weight.shape[1]), dtype=self.weight.dtype, device=x.device)
        for r0 in range(0, n, block):
            rs = slice(r0, r0 + block)
            flat = ids[rs].reshape(-1)
            rows = torch.index_select(self.weight, 0, flat, out=buf[: flat.numel()]).view(-1, n_ids, buf.shape[1])
            torch.bmm(rows, x[rs, :, None], out=out[rs, :, None])
        if self.bias is not None:
            out += self.bias[ids]
        return self._cap(out)


@dataclass(frozen=True)
class Final:
    """The model's output distribution at every position, computed once: the output row's statistics
    and every other row's KL read it. Log-probabilities are torch's ``log_softmax`` of the logits, the
    very numbers a user of the model gets."""

    logits: Float[Tensor, "pos d_vocab"]
    probs: Float[Tensor, "pos d_vocab"]
    lse: Float[Tensor, "pos"]
    entropy: Float[Tensor, "pos"]
    """In nats."""

    @staticmethod
    @torch.no_grad()
    def of(logits: Float[Tensor, "pos d_vocab"]) -> Final:
        logp = logits.log_softmax(-1)
        probs = logits.softmax(-1)
        top, top_id = logits.max(-1)
        lse = top - logp.gather(-1, top_id[:, None])[:, 0]
        entropy = -sum(torch.linalg.vecdot(probs[:, c : c + 8192], logp[:, c : c + 8192])
                       for c in range(0, logits.shape[1], 8192))  # in column chunks: no vocabulary-wide temporary
        return Final(logits, probs, lse, entropy.clamp_min(0.0))

    def positions(self, ps: slice) -> Final:
        return Final(self.logits[ps], self.probs[ps], self.lse[ps], self.entropy[ps])


@torch.no_grad()
def dense_stats(final: Final, top_k: int, track_ids: Int[Tensor, "pos track"]) -> Stats:
    """Statistics of one full row of logits (the model output); KL to itself is 0."""
    logits, lse = final.logits, final.lse[:, None]
    top_l, top_ids = logits.topk(top_k, -1)
    tracked = logits.gather(-1, track_ids)  # [pos, track]
    return Stats(top_ids[None], torch.exp(top_l - lse)[None], final.entropy[None],
                 torch.zeros_like(final.entropy)[None], torch.exp(tracked - lse)[None],
                 (1 + _count_above(logits, tracked))[None])  # fmt: skip


def _count_above(logits: Float[Tensor, "pos d_vocab"], thresholds: Float[Tensor, "pos track"],
                 chunk: int = 8192) -> Int[Tensor, "pos track"]:  # fmt: skip
    """``#{v : logits[:, v] > thresholds[:, j]}`` per position and j, over column chunks (a count over whole
    vocabulary-long rows is several times slower in torch)."""
    out = torch.zeros(thresholds.shape, dtype=torch.long, device=logits.device)
    buf = torch.empty((logits.shape[0], chunk), dtype=torch.bool, device=logits.device)
    for c0 in range(0, logits.shape[1], chunk):
        part = logits[:, c0 : c0 + chunk]
        gt = buf[:, : part.shape[1]]
        for j in range(thresholds.shape[1]):
            out[:, j] += torch.gt(part, thresholds[:, j : j + 1], out=gt).count_nonzero(-1)
    return out


@torch.no_grad()
def stream_stats(unembed: Unembedding, normed: Float[Tensor, "row pos d_model"], final: Final, top_k: int,
                 track_ids: Int[Tensor, "pos track"], chunk: int | None = None, workers: int | None = None) -> Stats:  # fmt: skip
    """Statistics for every (row, position) of ``normed`` (already through the final norm); ``final`` is
    the model's output distribution (:meth:`Final.of`), which KL is measured from.

    chunk: vocabulary chunk; None sizes a tile to :data:`TILE_BYTES`; ``d_vocab`` disables chunking.
    workers: CPU threads splitting the vocabulary (default: torch's thread count; 1 on accelerators).
    """
    n_rows, n_pos, _ = normed.shape
    cpu = normed.device.type == "cpu"
    workers = (torch.get_num_threads() if workers is None else workers) if cpu else 1
    pos_block = min(n_pos, MAX_BLOCK)
    row_block = max(1, MAX_BLOCK // pos_block)
    with ThreadPoolExecutor(max(1, workers)) if cpu else contextlib.nullcontext() as pool:
        parts = []
        for r0 in range(0, n_rows, row_block):
            cols = []
            for p0 in range(0, n_pos, pos_block):
                rs, ps = slice(r0, r0 + row_block), slice(p0, p0 + pos_block)
                cols.append(_block(unembed, normed[rs, ps], final.positions(ps), top_k, track_ids[ps], chunk, pool,
                                   max(1, workers)))  # fmt: skip
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
    """What one worker accumulated over its vocabulary range, in bits relative to its own ``shift`` (bits)."""

    shift: Tensor  # [n]
    s: Tensor  # [n] Σ 2^b, b = (l - shift)·log2 e
    t: Tensor  # [n] Σ 2^b·b
    above: Tensor  # [n, track] how many logits beat each tracked one (the token itself excluded)
    u: Tensor  # [n] Σ p_final·l·log2 e (absolute, not relative to shift)
    group_max: list[Tensor]  # [n, groups] per chunk
    group_ids: list[tuple[int, int]]  # (chunk start, stride) per chunk: group j holds start + j + i·stride
    tail_ids: list[Tensor]  # [n, k] top ids of ragged chunks

    def rebase(self, shift: Tensor) -> None:
        """Express the sums relative to a larger ``shift``."""
        delta = shift - self.shift
        decay = torch.exp2(-delta)
        self.t, self.s = decay * (self.t - delta * self.s), decay * self.s
        self.group_max = [g - delta[:, None] for g in self.group_max]
        self.shift = shift


@torch.no_grad()  # grad mode is per thread: workers need their own
def _scan(unembed: Unembedding, xs: Tensor, shift: Tensor, tracked: Tensor, flat_track: Tensor, p_final: Tensor,
          top_k: int, start: int, stop: int, chunk: int, worker: int = 0) -> _Scan:  # fmt: skip
    """Stream vocabulary ids ``start:stop`` in chunks. ``xs``: the rows prescaled for :meth:`Unembedding.bits`,
    (row, position) pairs in row-major order; ``shift`` and ``tracked`` in bits. ``worker``: run on a pool
    thread of ours with that many torch threads, flushing denormals (both are per-thread settings)."""
    if worker:
        torch.set_num_threads(worker)
        torch.set_flush_denormal(True)
    try:
        return _scan_range(unembed, xs, shift, tracked, flat_track, p_final, top_k, start, stop, chunk)
    finally:
        if worker:
            torch.set_flush_denormal(False)


def _scan_range(unembed: Unembedding, xs: Tensor, shift: Tensor, tracked: Tensor, flat_track: Tensor,
                p_final: Tensor, top_k: int, start: int, stop: int, chunk: int) -> _Scan:  # fmt: skip
    n, dev = xs.shape[0], xs.device
    n_pos = p_final.shape[0]
    capped = unembed.cap is not None
    raise_at = RAISE_AT * LOG2E
    out = _Scan(shift.clone(), torch.zeros(n, device=dev), torch.zeros(n, device=dev),
                torch.zeros(tracked.shape, device=dev), torch.zeros(n, device=dev), [], [], [])  # fmt: skip
    thresholds = tracked - shift[:, None]
    weights = torch.empty((n, chunk), device=dev)
    above = torch.empty((n, chunk), dtype=torch.bool, device=dev)
    for c0 in range(start, stop, chunk):
        c1 = min(c0 + chunk, stop)
        width = c1 - c0
        tile = unembed.bits(xs, c0, c1, out.shift)  # [n, width]: (l - shift)·log2 e
        if width % GROUP == 0:  # strided groups {c0 + j + i·stride}: one vectorised max over GROUP slices
            gmax = tile.view(n, GROUP, width // GROUP).amax(1)
            out.group_max.append(gmax)
            out.group_ids.append((c0, width // GROUP))
            top = gmax.amax(-1)
        else:  # a ragged chunk: its own top-k ids become candidates
            out.tail_ids.append(tile.topk(min(top_k, width), -1).indices + c0)
            top = tile.amax(-1)
        if not capped and bool((top > raise_at).any()):
            delta = torch.where(top > raise_at, top, torch.zeros_like(top))
            tile -= delta[:, None]
            out.rebase(out.shift + delta)
            thresholds = thresholds - delta[:, None]
        w, gt = weights[:, :width], above[:, :width]
        torch.exp2(tile, out=w)
        out.s += w.sum(-1)
        out.t += torch.linalg.vecdot(w, tile)
        p = p_final[:, c0:c1]  # E_final[l] in bits: Σ p·b + shift·Σ p
        e = torch.linalg.vecdot(tile.view(-1, n_pos, width), p[None]) + out.shift.view(-1, n_pos) * p.sum(-1)
        out.u += e.reshape(n)
        for j in range(tracked.shape[1]):  # l > threshold, counted: exact ranks (one compare, one count)
            torch.gt(tile, thresholds[:, j : j + 1], out=gt)
            out.above[:, j] += gt.count_nonzero(-1)
        inside = (flat_track >= c0) & (flat_track < c1)
        if bool(inside.any()):  # a tracked token counted itself if its tile logit rounds above the gathered one
            own = tile.gather(-1, (flat_track - c0).clamp(0, width - 1))
            out.above -= (inside & (own > thresholds)).float()
    return out


def _block(unembed: Unembedding, normed: Float[Tensor, "row pos d_model"], final: Final, top_k: int,
           track_ids: Int[Tensor, "pos track"], chunk: int | None, pool: ThreadPoolExecutor | None,
           workers: int) -> Stats:  # fmt: skip
    n_rows, n_pos, d_model = normed.shape
    n, vocab, dev = n_rows * n_pos, unembed.d_vocab, normed.device
    if chunk is None:
        chunk = max(GROUP * 16, TILE_BYTES // (4 * n) // GROUP * GROUP)
    chunk = min(chunk, vocab)
    x = normed.reshape(n, d_model)
    n_track = track_ids.shape[1]
    # reference logits: the tracked ids (next token, targets), the final top-1 and the current token
    current = torch.cat([track_ids[:1, 0], track_ids[:-1, 0]])  # tied embeddings favour it in early rows
    ref_ids = torch.cat([track_ids, final.logits.argmax(-1, keepdim=True), current[:, None]], -1)
    gathered = unembed.gather(x, ref_ids.repeat(n_rows, 1))  # [n, track + 2]
    tracked = gathered[:, :n_track]
    # Every logit is computed as (l - shift)·log2 e. With a softcap, shift = cap bounds it (2^b ≤ 1). Otherwise
    # shift starts at a logit the row really has (so s ≥ 1) and a tile that would overflow exp2 raises it.
    shift = torch.full((n,), unembed.cap, device=dev) if unembed.cap is not None else gathered.amax(-1)
    flat_track = track_ids.repeat(n_rows, 1)
    n_chunks = -(-vocab // chunk)
    bounds = [min(vocab, chunk * (n_chunks * i // workers)) for i in range(workers + 1)]
    ranges = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    args = (unembed, unembed.prescale(x), shift * LOG2E, tracked * LOG2E, flat_track, final.probs, top_k)
    if pool is None:  # accelerators: one range, torch's own parallelism
        scans = [_scan(*args, *ranges[0], chunk)]
    else:  # CPU: each range on a pool thread of ours; the work around them (top-k) uses every thread
        per_worker = 1 if len(ranges) > 1 else torch.get_num_threads()
        with _single_threaded(len(ranges) > 1):
            scans = list(pool.map(lambda r: _scan(*args, *r, chunk, per_worker), ranges))
    shift = torch.stack([sc.shift for sc in scans]).amax(0)
    for sc in scans:
        sc.rebase(shift)
    s, t = sum(sc.s for sc in scans), sum(sc.t for sc in scans)
    above = sum(sc.above for sc in scans)
    shift = shift / LOG2E  # back to nats
    top_v, top_i = _top_k(unembed, x, shift, top_k, scans)
    log_s = torch.log(s)
    entropy = log_s - t / (s * LOG2E)  # H = lse - E[l], lse = shift + log s, E[l] = shift + t/s
    lse = shift + log_s
    mean_final = sum(sc.u for sc in scans) / LOG2E  # E_final[l]
    kl = lse - mean_final - final.entropy.repeat(n_rows)  # KL(f ‖ q) = lse - E_f[l] - H(f)
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
    values = unembed.gather(x, cand).sub_(shift[:, None])  # recompute only the candidates' logits
    top_v, sel = values.topk(k, -1)
    return top_v, cand.gather(-1, sel)
