"""Logit lens: the last row is the model output for every adapter; streamed statistics equal a plain
full-vocabulary reference; sublayer rows; tracked tokens; one-line errors."""

from __future__ import annotations

import jaxtyping
import pytest
import torch

from mechscope.errors import ConfigError, OutOfRangeError, PromptError
from mechscope.lens import stream
from mechscope.lens.logit import logit_lens
from mechscope.lens.rows import lens_rows
from tests.tiny import TINY_ARCHS, VOCAB, tiny_model

PROMPT = "The reliability of Wikipedia is very questionable."


def reference(model, prompt, sublayers=False):
    """Everything materialised: [rows, pos, vocab] logits through the model's own final norm + unembedding."""
    ids = model.to_tokens(prompt).input_ids
    logits, cache = model.run_with_cache(ids)
    rows = lens_rows(model.cfg.n_layers, sublayers)
    resid = torch.stack([cache[r.hook][0] for r in rows])
    full = model.unembed(resid)  # [row, pos, vocab]
    logp = full.log_softmax(-1)
    kl = (logp[-1].exp() * (logp[-1] - logp)).sum(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return ids[0], logits[0], full, logp, kl, entropy, resid


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_last_row_is_the_model_output(arch):
    model = tiny_model(arch)
    res = logit_lens(model, PROMPT, top_k=VOCAB)  # the whole distribution, sorted
    out = model(PROMPT)[0].softmax(-1)  # [pos, vocab]
    probs = torch.zeros_like(out).scatter_(-1, res.top_ids[-1], res.top_probs[-1])
    torch.testing.assert_close(probs, out, atol=1e-5, rtol=0)
    assert torch.all(res.kl[-1] == 0)


def test_softcap_is_applied_like_the_model():
    model = tiny_model("gemma2")
    assert model.cfg.logit_softcap == 3.0
    res = logit_lens(model, PROMPT, top_k=VOCAB)
    _, _, full, logp, kl, entropy, _ = reference(model, PROMPT)
    assert full.abs().max() <= 3.0  # softcapped logits
    for r in range(res.n_rows):
        probs = torch.zeros(res.n_pos, VOCAB).scatter_(-1, res.top_ids[r], res.top_probs[r])
        torch.testing.assert_close(probs, logp[r].exp(), atol=1e-5, rtol=0)
    torch.testing.assert_close(res.kl, kl, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["gemma3", "llama", "gpt2", "gemma2"])
@pytest.mark.parametrize("chunk", [None, 37, 96, VOCAB])
def test_chunked_equals_unchunked_reference(arch, chunk):
    model = tiny_model(arch)
    ids, _, full, logp, kl, entropy, _ = reference(model, PROMPT, sublayers=True)
    res = logit_lens(model, PROMPT, top_k=7, sublayers=True, targets=[5, 17], chunk=chunk)
    top = logp.topk(7, -1)
    assert torch.equal(res.top_ids, top.indices)
    torch.testing.assert_close(res.top_probs, top.values.exp(), atol=1e-6, rtol=0)
    torch.testing.assert_close(res.entropy, entropy, atol=2e-5, rtol=0)
    torch.testing.assert_close(res.kl, kl, atol=2e-5, rtol=0)
    nxt = ids[1:]
    nxt_logit = full[:, :-1].gather(-1, nxt[None, :, None].expand(full.shape[0], -1, 1))
    torch.testing.assert_close(res.next_prob[:, :-1], logp[:, :-1].gather(-1, nxt[None, :, None].expand(
        full.shape[0], -1, 1))[..., 0].exp(), atol=1e-6, rtol=0)  # fmt: skip
    assert torch.equal(res.next_rank[:, :-1], 1 + (full[:, :-1] > nxt_logit).sum(-1))
    assert torch.isnan(res.next_prob[:, -1]).all() and (res.next_rank[:, -1] == 0).all()
    torch.testing.assert_close(res.target_probs, logp[..., [5, 17]].exp(), atol=1e-6, rtol=0)
    assert torch.equal(res.target_ranks[..., 0], 1 + (full > full[..., 5:6]).sum(-1))


def test_workers_and_chunks_agree_exactly_on_ids():
    model = tiny_model("qwen2")
    normed = model.apply_final_norm(torch.randn(4, 6, 64) * 3)
    final = stream.Final.of(torch.randn(6, VOCAB))
    track = torch.randint(0, VOCAB, (6, 2))
    un = stream.Unembedding(model)
    a = stream.stream_stats(un, normed, final, 5, track, chunk=64, workers=1)
    b = stream.stream_stats(un, normed, final, 5, track, chunk=64, workers=3)
    c = stream.stream_stats(un, normed, final, 5, track, chunk=VOCAB, workers=1)
    for x, y in ((a, b), (a, c)):
        assert torch.equal(x.top_ids, y.top_ids) and torch.equal(x.track_ranks, y.track_ranks)
        torch.testing.assert_close(x.kl, y.kl, atol=1e-5, rtol=0)


def test_huge_logits_raise_the_shift_instead_of_overflowing():
    model = tiny_model("llama")
    with torch.no_grad():  # logits in the thousands: exp(l - shift) would overflow without a raised shift
        model.hf.lm_head.weight.mul_(400.0)
    _, _, full, logp, kl, entropy, _ = reference(model, PROMPT)
    assert (full.amax(-1) - full.median(-1).values).max() > 200
    res = logit_lens(model, PROMPT, top_k=3, chunk=64)
    assert torch.isfinite(res.kl).all() and torch.isfinite(res.entropy).all()
    # logits near 10^3 carry float32 rounding of ~10^-4 between matmul kernels
    torch.testing.assert_close(res.top_probs, logp.topk(3, -1).values.exp(), atol=1e-3, rtol=0)
    torch.testing.assert_close(res.kl, kl, rtol=1e-3, atol=1e-2)


def test_raising_the_shift_on_every_chunk_changes_nothing(monkeypatch):
    model = tiny_model("qwen3")
    base = logit_lens(model, PROMPT, top_k=5, chunk=64)
    monkeypatch.setattr(stream, "RAISE_AT", -1e9)  # every tile raises every row's shift
    raised = logit_lens(model, PROMPT, top_k=5, chunk=64)
    assert torch.equal(base.top_ids, raised.top_ids) and torch.equal(base.next_rank, raised.next_rank)
    for f in ("top_probs", "entropy", "kl", "next_prob"):
        torch.testing.assert_close(getattr(raised, f), getattr(base, f), atol=1e-5, rtol=0, equal_nan=True)


def test_sublayer_rows_read_resid_mid_and_resid_post():
    model = tiny_model("gemma3")
    res = logit_lens(model, PROMPT, sublayers=True)
    assert [r.label for r in res.rows[:4]] == ["embed", "L0.attn", "L0.mlp", "L1.attn"]
    assert res.n_rows == 1 + 2 * model.cfg.n_layers
    _, cache = model.run_with_cache(PROMPT)
    for i in range(model.cfg.n_layers):
        mid = res.resid[1 + 2 * i]
        torch.testing.assert_close(mid, (cache["resid_pre", i] + cache["attn_out", i])[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(res.resid[2 + 2 * i], (mid + cache["mlp_out", i][0]), atol=1e-4, rtol=1e-5)
    plain = logit_lens(model, PROMPT)
    post_rows = [0] + [2 + 2 * i for i in range(model.cfg.n_layers)]
    assert torch.equal(res.top_ids[post_rows], plain.top_ids)
    torch.testing.assert_close(res.kl[post_rows], plain.kl, atol=1e-6, rtol=0)


def test_token_ids_and_targets_as_strings():
    model = tiny_model("gpt2")
    ids = model.to_tokens(PROMPT).input_ids[0]
    a, b = logit_lens(model, PROMPT), logit_lens(model, ids.tolist())
    assert torch.equal(a.top_ids, b.top_ids) and a.tokens == b.tokens
    word = next(t for t in model.to_str_tokens(PROMPT, visible=False)[1:] if t.startswith(" "))
    res = logit_lens(model, PROMPT, targets=word)
    assert res.target_tokens == [word] and res.target_ids == [model.token_id(word)]


def test_result_accessors():
    model = tiny_model("llama")
    res = logit_lens(model, PROMPT, top_k=4)
    top = res.top(-1, -1)
    assert len(top) == 4 and top[0][2] >= top[-1][2] and top[0][1] == int(res.top_ids[-1, -1, 0])
    assert res.first_row_with({top[0][1]}) is not None
    assert res.row("L1") == 2 and res.position(-1) == res.n_pos - 1
    assert "logit lens" in repr(res)


def test_bad_inputs_are_one_line_errors():
    model = tiny_model("gemma3")
    for k in (0, -1, VOCAB + 1, True, 2.5):
        with pytest.raises(ConfigError, match="top_k must be an integer between 1 and"):
            logit_lens(model, PROMPT, top_k=k)
    with pytest.raises(PromptError, match="is not a single token"):
        logit_lens(model, PROMPT, targets=" reliability of Wikipedia")
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        logit_lens(model, PROMPT, targets=[VOCAB])
    with pytest.raises(ConfigError, match="chunk must be a positive integer"):
        logit_lens(model, PROMPT, chunk=0)
    with pytest.raises(PromptError):
        logit_lens(model, "")
    with pytest.raises(PromptError, match="one prompt at a time"):
        logit_lens(model, ["a", "b"])
    res = logit_lens(model, PROMPT)
    with pytest.raises(OutOfRangeError, match=r"position 99 out of range: the prompt has \d+ tokens"):
        res.top(-1, 99)
    for err in (ConfigError, PromptError, OutOfRangeError):
        assert "\n" not in str(err("x"))


@jaxtyping.jaxtyped(typechecker=None)
def test_stats_shapes_follow_their_annotations():
    model = tiny_model("mistral")
    res = logit_lens(model, PROMPT, top_k=3, targets=[5])
    assert isinstance(res.top_ids, jaxtyping.Int[torch.Tensor, "row pos k"])
    assert isinstance(res.top_probs, jaxtyping.Float[torch.Tensor, "row pos k"])
    assert isinstance(res.kl, jaxtyping.Float[torch.Tensor, "row pos"])
    assert isinstance(res.target_probs, jaxtyping.Float[torch.Tensor, "row pos target"])
    assert isinstance(res.resid, jaxtyping.Float[torch.Tensor, "row pos d_model"])
    assert res.top_ids.shape == (model.cfg.n_layers + 1, len(res.tokens), 3)


def test_worker_threads_leave_torch_thread_count_alone():
    import torch as t

    before = t.get_num_threads()
    model = tiny_model("llama")
    normed = model.apply_final_norm(t.randn(2, 3, 64)).detach()
    stream.stream_stats(stream.Unembedding(model), normed, stream.Final.of(t.randn(3, VOCAB)), 3,
                        t.zeros(3, 1, dtype=t.long),
                        chunk=64, workers=2)  # fmt: skip
    assert t.get_num_threads() == before
