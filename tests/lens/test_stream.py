"""Streamed lens statistics: vocabulary chunks are handed out dynamically to worker threads, and the result
is the same, bit for bit, whoever takes which chunk (1, 2 or 3 workers, or one worker stalled)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from mechscope.lens import stream
from tests.tiny import VOCAB, tiny_model


def _inputs(arch: str, scale: float = 3.0, rows: int = 4, pos: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    model = tiny_model(arch)
    normed = model.apply_final_norm(torch.randn(rows, pos, model.cfg.d_model) * scale).detach()
    final = stream.Final.of(torch.randn(pos, VOCAB) * 4)
    track = torch.randint(0, VOCAB, (pos, 2))
    return stream.Unembedding(model), normed, final, track


def _assert_identical(a: stream.Stats, b: stream.Stats) -> None:
    for f in stream.Stats.__dataclass_fields__:
        assert torch.equal(getattr(a, f), getattr(b, f)), f


@pytest.mark.parametrize("arch", ["qwen2", "gemma2", "gpt2"])  # plain, softcapped, with an output bias
def test_any_number_of_workers_gives_the_same_bits(arch):
    un, normed, final, track = _inputs(arch)
    ref = stream.stream_stats(un, normed, final, 5, track, chunk=48, workers=1)
    for workers in (2, 3, 8):
        _assert_identical(ref, stream.stream_stats(un, normed, final, 5, track, chunk=48, workers=workers))


def test_a_stalled_worker_holds_back_one_chunk_not_half_the_vocabulary(monkeypatch):
    un, normed, final, track = _inputs("llama")
    ref = stream.stream_stats(un, normed, final, 5, track, chunk=32, workers=1)  # 13 chunks
    taken: dict[str, list[int]] = {}
    slow: list[str] = []
    lock = threading.Lock()
    tile = stream._tile

    def stalled(job, i, *bufs):
        name = threading.current_thread().name
        with lock:
            if not slow:
                slow.append(name)  # the first worker to start is the stalled one
            taken.setdefault(name, []).append(i)
        if name == slow[0]:
            time.sleep(0.05)
        return tile(job, i, *bufs)

    monkeypatch.setattr(stream, "_tile", stalled)
    res = stream.stream_stats(un, normed, final, 5, track, chunk=32, workers=2)
    _assert_identical(ref, res)
    assert sorted(i for ids in taken.values() for i in ids) == list(range(13))  # each chunk exactly once
    fast = next(name for name in taken if name != slow[0])
    assert len(taken[fast]) > 2 * len(taken[slow[0]])  # the free worker took over the stalled one's share


def test_raised_rows_are_identical_across_workers():
    un, normed, final, track = _inputs("llama", scale=3.0)
    un.weight = un.weight * 400.0  # logits in the thousands: rows are rescaled chunk by chunk
    ref = stream.stream_stats(un, normed, final, 3, track, chunk=64, workers=1)
    assert torch.isfinite(ref.kl).all() and torch.isfinite(ref.entropy).all()
    _assert_identical(ref, stream.stream_stats(un, normed, final, 3, track, chunk=64, workers=2))


def test_a_worker_error_propagates_and_leaves_threads_alone(monkeypatch):
    un, normed, final, track = _inputs("llama")
    before = torch.get_num_threads()

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(stream, "_tile", broken)
    with pytest.raises(RuntimeError, match="boom"):
        stream.stream_stats(un, normed, final, 3, track, chunk=64, workers=2)
    assert torch.get_num_threads() == before


def test_default_chunk_depends_on_the_shape_only():
    assert stream.chunk_size(1152, 262_144) == stream.TILE_BYTES // (4 * 1152) // stream.GROUP * stream.GROUP
    assert stream.chunk_size(8, 262_144) == 262_144 // stream.MIN_CHUNKS  # small inputs: still several chunks
    assert stream.chunk_size(8, VOCAB) == 16 * stream.GROUP  # never narrower than 16 groups
    assert stream.chunk_size(1, 100) == 100  # nor wider than the vocabulary


@pytest.mark.parametrize("width", [256, 2048])  # the halving path (short stride) and the strided max
def test_group_max_is_the_strided_maximum(width):
    tile = torch.randn(5, width)
    out = torch.empty(5, width // stream.GROUP)
    stream._group_max(tile, out, torch.empty(5 * width))
    assert torch.equal(out, tile.view(5, stream.GROUP, -1).amax(1))


@pytest.mark.parametrize("arch", ["qwen2", "gemma2", "gpt2"])
def test_bits_into_a_buffer_equal_bits(arch):
    un, normed, _, _ = _inputs(arch)
    xs = un.prescale(normed.reshape(-1, normed.shape[-1]))
    shift = torch.randn(xs.shape[0])
    buf = torch.empty(xs.shape[0] * 50)
    assert torch.equal(un.bits(xs, 10, 60, shift), un.bits(xs, 10, 60, shift, out=buf.view(xs.shape[0], 50)))
