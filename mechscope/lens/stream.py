"""Lens statistics without materialising [rows × positions × vocab].

For every (row, position) a lens needs a distribution over the whole vocabulary: top-k, entropy, KL
from the final distribution, and the probability and rank of a few tracked tokens (the actual next
token, user targets). Holding all logits at once costs rows·pos·vocab·4 bytes (1.27 GB for 19 × 64 ×
262k). Instead we stream over vocabulary chunks, as flash attention streams over keys: one matmul per
chunk gives a cache-sized tile of logits ``l - shift`` (the per-row shift rides in the matmul), and a
few passes over the tile give the chunk's partial results:

- ``s = Σ exp(l - shift)``                 → ``logsumexp = shift + log s``
- ``t = Σ exp(l - shift)·(l - shift)``     → ``entropy = log s - t / s``
- ``u = Σ p_final·(l - shift)``            → ``KL(final ‖ lens) = logsumexp - E_final[l] - H(final)``
- ``#{v : l_v > l_tracked}``               → ranks of tracked tokens
- the max of every group of 16 columns     → exact top-k afterwards: the k groups with the largest
  maxima hold every top-k logit, so only those 16·k logits per row are recomputed.

Tiles are kept in bits, ``(l - shift)·log2 e``, so the exponentials are ``exp2``: on CPU torch's
``exp`` is ~4× slower than ``exp2`` and 10–30× slower still on inputs that underflow, which the early
rows are full of (a token reading itself through tied embeddings sits hundreds of nats above the rest).
Workers also flush denormals to zero. Everything is converted back to nats at the end.

Each pass is one torch op over the whole tile, chosen for what is fast on both AVX-512 and AVX2 CPUs:
counts are a compare into a float 0/1 tile and a sum (a bool result and ``count_nonzero`` took 3× as
long on an AVX-512 Xeon), ``Σ p_final·b`` is one matrix-vector product per position, ``t`` reuses the
exp2 tile in place, and nothing the size of a tile is allocated per chunk. The few rows whose logits
sit far above their starting shift are noticed after the exp2 (their ``s`` is huge or not finite) and
only they are redone relative to their own maximum, so a tile costs no overflow check.

On the CPU, worker threads (one torch thread each) pull chunk indices from a shared counter until none
are left: a stalled core holds back one tile, not half the vocabulary. Each chunk's partial results
are computed from the chunk alone and summed in chunk order afterwards, so the result is the same, bit
for bit, whichever worker took which chunk and however many there are. The model's own logits (the
last row) come from its forward pass and are used as they are (:func:`dense_stats`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechscope.runtime import cpu_threads, flush_denormals

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

TILE_BYTES = 8 << 20
"""Target size of one logit tile ((row, position) pairs of a block × vocab chunk × 4 bytes). Measured on a
2 MB-L2 Xeon: 1–2 MB tiles fit L2 but their ~25 torch ops per tile cost more than they save (stream
1.77 s at 8 MB, 1.80 s at 4 MB, 1.92 s at 2 MB, 2.17 s at 1 MB for 1152 rows × 262k)."""
MIN_CHUNKS = 16
"""A large vocabulary is cut into at least this many chunks, so that every worker pulls several."""
MAX_BLOCK = 2048
"""Most (row, position) pairs streamed together; longer inputs are split into several blocks."""
GROUP = 16
"""Columns per group for the top-k search (group maxima first, then the k best groups)."""
RAISE_AT = 60.0
"""A row whose chunk sum reaches ``exp(RAISE_AT)`` (a logit about this many nats above the shift; exp overflows in
float32 at 88) has that chunk's sums redone relative to its own maximum."""
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
        head = model.unembed  # the model's own output head (mechscope.model.unembed)
        self.weight: Float[Tensor, "d_vocab d_model"] = head.weight
        self.bias = head.bias
        self.cap = head.softcap
        self.d_vocab = head.d_vocab

    def _cap(self, logits: Tensor) -> Tensor:
        if self.cap is not None:  # the same three steps as Unembed.cap, in place
            logits.div_(self.cap).tanh_().mul_(self.cap)
        return logits

    def prescale(self, x: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_model"]:
        """The input :meth:`bits` takes: without a softcap ``x·log2 e`` (the scale rides in the matmul)."""
        return x if self.cap is not None else x * LOG2E

    def bits(self, xs: Float[Tensor, "n d_model"], start: int, stop: int, shift: Float[Tensor, "n"],
             out: Float[Tensor, "n chunk"] | None = None) -> Float[Tensor, "n chunk"]:  # fmt: skip
        """``(l - shift)·log2 e`` for vocabulary ids ``start:stop`` (softcapped like the model's output),
        with ``shift`` in bits and ``xs`` from :meth:`prescale`. Without a softcap it is one ``addmm``.
        ``out``: a contiguous tensor to write into (a reused buffer saves a tile's page faults)."""
        w = self.weight[start:stop]
        bias = self.bias[start:stop] if self.bias is not None else None
        if self.cap is None:
            out = torch.addmm(shift[:, None].neg(), xs, w.T, out=out)
            return out.add_(bias, alpha=LOG2E) if bias is not None else out
        if bias is None:
            out = torch.mm(xs, w.T, out=out)
        else:  # what F.linear does with a bias
            out = torch.addmm(bias, xs, w.T, out=out)
        return self._cap(out).mul_(LOG2E).sub_(shift[:, None])

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
    top_id: Int[Tensor, "pos"] | None = None
    """The most likely token at each position (None: look it up in ``logits``)."""

    @staticmethod
    @torch.no_grad()
    def of(logits: Float[Tensor, "pos d_vocab"]) -> Final:
        logp = logits.log_softmax(-1)
        probs = logits.softmax(-1)
        top, top_id = logits.max(-1)
        lse = top - logp.gather(-1, top_id[:, None])[:, 0]
        entropy = -sum(torch.linalg.vecdot(probs[:, c : c + 8192], logp[:, c : c + 8192])
                       for c in range(0, logits.shape[1], 8192))  # in column chunks: no vocabulary-wide temporary
        return Final(logits, probs, lse, entropy.clamp_min(0.0), top_id)

    def positions(self, ps: slice) -> Final:
        top_id = self.top_id[ps] if self.top_id is not None else None
        return Final(self.logits[ps], self.probs[ps], self.lse[ps], self.entropy[ps], top_id)


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
    vocabulary-long rows is several times slower in torch), each a compare into float 0/1 and a sum (exact
    below 2^24; a bool result and ``count_nonzero`` take ~3× as long on CPU)."""
    out = torch.zeros(thresholds.shape, dtype=torch.long, device=logits.device)
    buf = torch.empty((logits.shape[0], chunk), dtype=logits.dtype, device=logits.device)
    for c0 in range(0, logits.shape[1], chunk):
        part = logits[:, c0 : c0 + chunk]
        gt = buf[:, : part.shape[1]]
        for j in range(thresholds.shape[1]):
            out[:, j] += torch.gt(part, thresholds[:, j : j + 1], out=gt).sum(-1).long()
    return out


@torch.no_grad()
def stream_stats(unembed: Unembedding, normed: Float[Tensor, "row pos d_model"], final: Final, top_k: int,
                 track_ids: Int[Tensor, "pos track"], chunk: int | None = None, workers: int | None = None) -> Stats:  # fmt: skip
    """Statistics for every (row, position) of ``normed`` (already through the final norm); ``final`` is
    the model's output distribution (:meth:`Final.of`), which KL is measured from.

    chunk: vocabulary chunk; None: :func:`chunk_size`; ``d_vocab`` disables chunking.
    workers: CPU threads pulling vocabulary chunks from a shared queue (default: torch's thread count;
    1 on accelerators). The result is the same, bit for bit, for any number of workers.
    """
    n_rows, n_pos, _ = normed.shape
    cpu = normed.device.type == "cpu"
    workers = max(1, torch.get_num_threads() if workers is None else workers) if cpu else 1
    pos_block = min(n_pos, MAX_BLOCK)
    row_block = max(1, MAX_BLOCK // pos_block)
    with ThreadPoolExecutor(workers, "mechscope-lens") if cpu else contextlib.nullcontext() as pool:
        parts = []
        for r0 in range(0, n_rows, row_block):
            cols = []
            for p0 in range(0, n_pos, pos_block):
                rs, ps = slice(r0, r0 + row_block), slice(p0, p0 + pos_block)
                cols.append(_block(unembed, normed[rs, ps], final.positions(ps), top_k, track_ids[ps], chunk, pool,
                                   workers))  # fmt: skip
            parts.append(Stats.cat(cols, dim=1))
    return Stats.cat(parts)


def chunk_size(n: int, d_vocab: int) -> int:
    """The default vocabulary chunk for ``n`` (row, position) pairs: a tile of about :data:`TILE_BYTES`, a
    multiple of :data:`GROUP`, and at least :data:`MIN_CHUNKS` chunks over a large vocabulary so that
    every worker gets several. It depends on the input's shape only, never on the number of workers."""
    tile = TILE_BYTES // (4 * n) // GROUP * GROUP
    spread = -(-d_vocab // (MIN_CHUNKS * GROUP)) * GROUP
    return min(d_vocab, max(GROUP * 16, min(tile, spread)))


@dataclass(frozen=True)
class _Job:
    """What the tiles of one block share. Workers write only their own columns of ``group_max``."""

    unembed: Unembedding
    xs: Tensor  # [n, d_model] rows prescaled for Unembedding.bits, (row, position) pairs in row-major order
    shift: Tensor  # [n] bits: where every tile starts
    thresholds: Tensor  # [n, track] tracked logits in bits, relative to shift
    track_ids: Tensor  # [n, track]
    p_final: Tensor  # [pos, d_vocab]
    top_k: int
    chunks: list[tuple[int, int]]  # vocabulary ids start:stop of each chunk
    tracked_in: frozenset[int]  # chunks holding a tracked id
    group_max: Tensor  # [n, groups] bits relative to shift; chunk i's groups at columns i·stride (see _groups)


@dataclass
class _Part:
    """One vocabulary chunk's partial sums, in bits relative to its own ``shift`` (the job's shift except in
    rows where the chunk had to raise it). Each chunk is computed alone: which worker made it does not
    matter."""

    shift: Tensor  # [n]
    s: Tensor  # [n] Σ 2^b, b = (l - shift)·log2 e
    t: Tensor  # [n] Σ 2^b·b
    u: Tensor  # [n] Σ p_final·b, b relative to the job's shift (never raised)
    above: Tensor  # [n, track] how many logits beat each tracked one (the token itself excluded)
    tail_ids: Tensor | None  # [n, k] top ids of a chunk too narrow for groups
    raised: bool


def _groups(chunks: list[tuple[int, int]]) -> list[int]:
    """Group-max columns per chunk: ``width / GROUP`` for a chunk whose width is a multiple of GROUP (group j
    holds ids ``start + j + i·stride``, i < GROUP), 0 for a ragged one (its own top-k ids are candidates)."""
    return [(b - a) // GROUP if (b - a) % GROUP == 0 else 0 for a, b in chunks]


def _group_max(tile: Tensor, out: Tensor, scratch: Tensor) -> None:
    """``out[:, j] = max_i tile[:, j + i·stride]``: a strided max (wide tiles) or, when the stride is short
    and that kernel slow, halving ``torch.maximum`` steps in ``scratch`` (same groups, exact either way)."""
    n, width = tile.shape
    if width // GROUP >= 64:
        torch.amax(tile.view(n, GROUP, width // GROUP), 1, out=out)
        return
    src, used = tile, 0
    while src.shape[1] > width // GROUP:
        half = src.shape[1] // 2
        dst = out if half == width // GROUP else scratch[used : used + n * half].view(n, half)
        torch.maximum(src[:, :half], src[:, half:], out=dst)
        src, used = dst, used + n * half


def _tile(job: _Job, i: int, tile_buf: Tensor, work_buf: Tensor) -> _Part:
    """Chunk ``i``: one matmul into ``tile_buf``, then the passes over the tile, each elementwise result
    written into ``work_buf`` and reduced (nothing the size of a tile is allocated)."""
    start, stop = job.chunks[i]
    n, width = job.xs.shape[0], stop - start
    tile = job.unembed.bits(job.xs, start, stop, job.shift, out=tile_buf[: n * width].view(n, width))
    work = work_buf[: n * width].view(n, width)
    tail_ids = None
    if width % GROUP == 0:  # candidates for the exact top-k: the maximum of every group
        stride = width // GROUP
        out = job.group_max[:, i * stride : (i + 1) * stride] if i < len(job.chunks) - 1 else job.group_max[:, -stride:]
        _group_max(tile, out, work_buf)
    else:  # a ragged chunk: its own top-k ids become candidates
        tail_ids = tile.topk(min(job.top_k, width), -1).indices + start
    # l > tracked, counted (exact ranks): a compare into float 0/1, then a sum. A bool result and
    # count_nonzero took 3× as long on an AVX-512 Xeon. float32 counts are exact up to 2^24.
    thresholds = job.thresholds
    above = torch.stack([torch.gt(tile, thresholds[:, j : j + 1], out=work).sum(-1)
                         for j in range(thresholds.shape[1])], -1)  # fmt: skip
    if i in job.tracked_in:  # a tracked token counted itself if its tile logit rounds above the gathered one
        inside = (job.track_ids >= start) & (job.track_ids < stop)
        own = tile.gather(-1, (job.track_ids - start).clamp(0, width - 1))
        above -= (inside & (own > thresholds)).float()
    # Σ p_final·b: one matrix-vector product per position (the rows sharing it)
    p = job.p_final[:, start:stop]  # [pos, width]
    n_pos = p.shape[0]
    u = torch.bmm(tile.view(-1, n_pos, width).transpose(0, 1), p[:, :, None])[..., 0].T.reshape(n)
    torch.exp2(tile, out=work)
    s = work.sum(-1)
    t = work.mul_(tile).sum(-1)
    # Rows where a logit sits more than RAISE_AT above the shift (s ≥ 2^RAISE_AT·log2 e, or inf / nan once exp2
    # overflowed): their sums are redone relative to their own maximum. There are few (a token reading itself
    # through tied embeddings hundreds of nats above the rest), and the tile is still there: no check per tile.
    shift, raised = job.shift, False
    big = ~(s < 2.0 ** (RAISE_AT * LOG2E))
    if job.unembed.cap is None and bool(big.any()):
        rows = big.nonzero()[:, 0]
        b = tile[rows]  # [rows, width]
        delta = b.amax(-1)
        b -= delta[:, None]
        w = torch.exp2(b)
        s, t = s.index_copy(0, rows, w.sum(-1)), t.index_copy(0, rows, (w * b).sum(-1))
        shift, raised = shift.index_add(0, rows, delta), True
    return _Part(shift, s, t, u, above, tail_ids, raised)


@torch.no_grad()  # grad mode is per thread: workers need their own
def _work(job: _Job, parts: list[_Part | None], queue: Iterator[int], cpu: bool) -> None:
    """Take chunk indices from the shared ``queue`` until it runs dry. On the CPU with one torch thread and
    denormals flushed (per-thread settings, restored on exit): workers run side by side, not nested."""
    n, widest = job.xs.shape[0], max(b - a for a, b in job.chunks)
    with cpu_threads(1 if cpu else None), flush_denormals(job.xs.device):
        tile_buf = torch.empty(n * widest, dtype=job.xs.dtype, device=job.xs.device)
        work_buf = torch.empty_like(tile_buf)
        for i in queue:  # next() on an itertools.count is atomic (one C call under the GIL): no index twice
            if i >= len(job.chunks):
                return
            parts[i] = _tile(job, i, tile_buf, work_buf)


def _block(unembed: Unembedding, normed: Float[Tensor, "row pos d_model"], final: Final, top_k: int,
           track_ids: Int[Tensor, "pos track"], chunk: int | None, pool: ThreadPoolExecutor | None,
           workers: int) -> Stats:  # fmt: skip
    n_rows, n_pos, d_model = normed.shape
    n, vocab, dev = n_rows * n_pos, unembed.d_vocab, normed.device
    chunk = min(chunk or chunk_size(n, vocab), vocab)
    x = normed.reshape(n, d_model)
    n_track = track_ids.shape[1]
    # reference logits: the tracked ids (next token, targets), the final top-1 and the current token
    current = torch.cat([track_ids[:1, 0], track_ids[:-1, 0]])  # tied embeddings favour it in early rows
    top_id = final.top_id if final.top_id is not None else final.logits.argmax(-1)
    ref_ids = torch.cat([track_ids, top_id[:, None], current[:, None]], -1)
    gathered = unembed.gather(x, ref_ids.repeat(n_rows, 1))  # [n, track + 2]
    tracked = gathered[:, :n_track]
    # Every logit is computed as (l - shift)·log2 e. With a softcap, shift = cap bounds it (2^b ≤ 1). Otherwise
    # shift starts at a logit the row really has (so s ≥ 1) and a tile that would overflow exp2 raises it.
    shift = torch.full((n,), unembed.cap, device=dev) if unembed.cap is not None else gathered.amax(-1)
    chunks = [(c0, min(c0 + chunk, vocab)) for c0 in range(0, vocab, chunk)]
    job = _Job(unembed, unembed.prescale(x), shift * LOG2E, (tracked - shift[:, None]) * LOG2E,
               track_ids.repeat(n_rows, 1), final.probs, top_k, chunks,
               frozenset((track_ids.unique() // chunk).tolist()),
               torch.empty((n, sum(_groups(chunks))), dtype=x.dtype, device=dev))  # fmt: skip
    parts: list[_Part | None] = [None] * len(chunks)
    queue = itertools.count()
    if pool is None:  # accelerators: one worker, torch's own parallelism
        _work(job, parts, queue, cpu=False)
    else:  # CPU: a worker takes the next chunk when done with its last, so a stalled core holds one tile back
        with cpu_threads(1):  # (part of torch's thread setting is process-wide: keep it at 1 meanwhile)
            futures = [pool.submit(_work, job, parts, queue, True) for _ in range(min(workers, len(chunks)))]
            for f in futures:
                f.result()
    return _merge(job, x, final, n_rows, n_pos, tracked, parts)


def _merge(job: _Job, x: Float[Tensor, "n d_model"], final: Final, n_rows: int, n_pos: int,
           tracked: Float[Tensor, "n track"], parts: list[_Part]) -> Stats:  # fmt: skip
    """Sum the chunks' partial results in chunk order (whoever computed them), then the exact top-k."""
    n_track, top_k = tracked.shape[1], job.top_k
    shifts = torch.stack([p.shift for p in parts])  # [chunk, n] bits
    shift = shifts.amax(0)
    s, t = torch.stack([p.s for p in parts]), torch.stack([p.t for p in parts])
    u = torch.stack([p.u for p in parts]).sum(0) + job.shift * job.p_final.sum(-1).repeat(n_rows)  # Σ p·l·log2 e
    if any(p.raised for p in parts):  # express every chunk relative to the largest shift
        delta = shift - shifts
        decay = torch.exp2(-delta)
        s, t = decay * s, decay * (t - delta * s)
    s, t = s.sum(0), t.sum(0)
    above = torch.stack([p.above for p in parts]).sum(0)
    mean_final = u / LOG2E  # E_final[l]
    top_v, top_i = _top_k(job, x, shift / LOG2E, [p.tail_ids for p in parts])
    shift = shift / LOG2E  # back to nats
    log_s = torch.log(s)
    entropy = log_s - t / (s * LOG2E)  # H = lse - E[l], lse = shift + log s, E[l] = shift + t/s
    lse = shift + log_s
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


def _top_k(job: _Job, x: Float[Tensor, "n d_model"], shift: Float[Tensor, "n"],
           tail_ids: list[Tensor | None]) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Exact top-k (values as ``l - shift``, nats) from the group maxima: the k groups with the largest maxima
    hold every top-k logit (any other group's max is beaten by k logits of k distinct groups)."""
    n, k, dev = x.shape[0], job.top_k, x.device
    cands = [ids for ids in tail_ids if ids is not None]
    layout = [(start, g) for (start, _), g in zip(job.chunks, _groups(job.chunks)) if g]
    if layout:
        base = torch.cat([torch.arange(start, start + g, device=dev) for start, g in layout])
        step = torch.cat([torch.full((g,), g, device=dev) for _, g in layout])
        best = job.group_max.topk(min(k, job.group_max.shape[1]), -1).indices  # [n, k]
        offsets = torch.arange(GROUP, device=dev)
        cands.append((base[best][..., None] + step[best][..., None] * offsets).reshape(n, -1))
    cand = torch.cat(cands, -1)  # [n, candidates]
    values = job.unembed.gather(x, cand).sub_(shift[:, None])  # recompute only the candidates' logits
    top_v, sel = values.topk(k, -1)
    return top_v, cand.gather(-1, sel)
