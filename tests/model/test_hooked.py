"""Hooked logits equal plain HF; every hook exists with its documented shape; hooks never leak."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mechscope.errors import HookNameError, OutOfRangeError
from mechscope.model.hookpoints import BLOCK_HOOKS
from tests.tiny import TINY_ARCHS, tiny_model

PROMPTS = ["The capital of France is", "Sparse autoencoders find features", "Paris"]


def plain_hf(model, batch):
    with torch.no_grad():
        return model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids).logits  # fmt: skip


def test_logits_equal_plain_hf_with_and_without_cache(tiny):
    batch = tiny.to_tokens(PROMPTS)
    ref = plain_hf(tiny, batch)
    assert torch.equal(tiny(PROMPTS), ref)  # no hooks: the very same computation
    logits, cache = tiny.run_with_cache(PROMPTS, names="*hook_resid_*")
    assert torch.equal(logits, ref)  # caching without patterns keeps SDPA: bit-identical
    logits_all, cache_all = tiny.run_with_cache(PROMPTS)
    real = batch.attention_mask.bool()  # padding positions hold arbitrary values in either path
    torch.testing.assert_close(logits_all[real], ref[real], atol=1e-5, rtol=0)  # patterns switch to eager
    assert set(cache_all) == set(tiny.hook_names)


def _expected_shape(symbolic, sizes, b, p):
    return tuple({"batch": b, "pos": p, "key_pos": p}.get(d, sizes.get(d, d)) for d in symbolic)


def test_every_hook_has_documented_shape(tiny):
    doc = _doc_table()
    n_layers = tiny.cfg.n_layers
    names = set(tiny.hook_names)
    for name, shape in doc.items():
        if name.startswith("blocks.{i}."):
            for i in range(n_layers):
                assert name.replace("{i}", str(i)) in names
        else:
            assert name in names
    logits, cache = tiny.run_with_cache(PROMPTS)
    b, p = tiny.to_tokens(PROMPTS).input_ids.shape
    sizes = vars(tiny.cfg.dims)
    for name, tensor in cache.items():
        symbolic = tiny.hook_shapes(concrete=False)[name]
        generic = re.sub(r"blocks\.\d+\.", "blocks.{i}.", name)
        if generic in doc:
            assert symbolic == doc[generic], name
        assert tuple(tensor.shape) == _expected_shape(symbolic, sizes, b, p), name


def _doc_table() -> dict[str, tuple[str, ...]]:
    """Parse docs/hooks.md's canonical table: `name` | shape."""
    text = (Path(__file__).parents[2] / "docs" / "hooks.md").read_text()
    start = text.index("| name | shape | meaning |")
    rows = text[start:].split("\n\n", 1)[0]  # the canonical table only, up to its first blank line
    table = {}
    for line in rows.splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|\s*([a-z_ ]+?)\s*\|", line)
        if m:
            table[m.group(1)] = tuple(m.group(2).split())
    assert len(table) >= 15
    return table


def test_docs_table_matches_block_hooks():
    doc = _doc_table()
    assert {n.removeprefix("blocks.{i}.") for n in doc if n.startswith("blocks.")} == set(BLOCK_HOOKS)


def test_resid_mid_is_pre_plus_attn_out_and_post_is_mid_plus_mlp(tiny):
    _, c = tiny.run_with_cache(PROMPTS, names="*")
    for i in range(tiny.cfg.n_layers):
        torch.testing.assert_close(c["resid_mid", i], c["resid_pre", i] + c["attn_out", i], atol=0, rtol=0)
        if tiny.cfg.parallel_residual:
            torch.testing.assert_close(c["resid_post", i], c["resid_pre", i] + c["attn_out", i] + c["mlp_out", i],
                                       atol=1e-5, rtol=0)  # fmt: skip
        else:
            torch.testing.assert_close(c["resid_post", i], c["resid_mid", i] + c["mlp_out", i], atol=1e-6, rtol=0)
        if i + 1 < tiny.cfg.n_layers:
            assert torch.equal(c["resid_post", i], c["resid_pre", i + 1])
    # the final norm reads the last residual, and the model's own head reproduces the logits
    last = c["resid_post", tiny.cfg.n_layers - 1]
    torch.testing.assert_close(tiny.apply_final_norm(last), c["ln_final.hook_normalized"], atol=1e-6, rtol=0)


def test_pattern_is_causal_and_normalised(tiny):
    _, c = tiny.run_with_cache(PROMPTS[:1], names="*hook_pattern")
    pat = c["pattern", 0]
    torch.testing.assert_close(pat.sum(-1), torch.ones(pat.shape[:-1]), atol=1e-5, rtol=0)
    assert torch.all(pat.triu(diagonal=1) == 0)


def test_z_through_output_projection_gives_attention_output(tiny):
    _, c = tiny.run_with_cache(PROMPTS[:1], names=["blocks.1.attn.hook_z"])
    o_proj = tiny.hf.get_submodule(tiny.adapter.layers)[1].get_submodule(tiny.adapter.o_proj)
    z = c["z", 1]
    flat = z.reshape(*z.shape[:2], -1)
    out = o_proj(flat)
    if tiny.adapter.attn_out == "self_attn" or tiny.adapter.attn_out in ("attn", "attention"):
        _, c2 = tiny.run_with_cache(PROMPTS[:1], names=["blocks.1.hook_attn_out"])
        torch.testing.assert_close(out, c2["attn_out", 1], atol=1e-6, rtol=0)


def test_positions_and_device_restrict_cache(tiny):
    _, full = tiny.run_with_cache(PROMPTS[:1], names="*resid_post")
    _, part = tiny.run_with_cache(PROMPTS[:1], names="*resid_post", positions=[-1, 0], device="cpu")
    x = full["resid_post", 1]
    assert torch.equal(part["resid_post", 1], x[:, [x.shape[1] - 1, 0]])
    with pytest.raises(OutOfRangeError):
        tiny.run_with_cache(PROMPTS[:1], positions=[999])


def _no_hooks_left(model):
    for m in model.hf.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks, type(m).__name__
        assert "_mechscope_pattern_hooks" not in m.__dict__
    assert model.hf.config._attn_implementation != "mechscope_eager"


@pytest.mark.parametrize("arch", ["gemma3", "gpt2"])
def test_no_hook_survives_an_exception(arch):
    model = tiny_model(arch)

    def boom(act, hook):
        raise RuntimeError("user hook failed")

    with pytest.raises(RuntimeError, match="user hook failed"):
        model.run_with_cache(PROMPTS, fwd_hooks=[("blocks.1.attn.hook_pattern", boom)])
    _no_hooks_left(model)
    with pytest.raises(RuntimeError):
        with model.hooks([("blocks.0.hook_resid_mid", lambda a, h: None)]):
            raise RuntimeError("body failed")
    _no_hooks_left(model)
    ref = plain_hf(model, model.to_tokens(PROMPTS))
    assert torch.equal(model(PROMPTS), ref)


def test_unknown_hook_names_suggest_close_ones():
    model = tiny_model("llama")
    with pytest.raises(HookNameError, match="did you mean blocks.1.hook_resid_post"):
        model.run_with_cache("Paris", names=["blocks.1.hook_resid_pots"])
    with pytest.raises(OutOfRangeError, match="3 layers"):
        model.run_with_cache("Paris", names=["blocks.7.hook_resid_post"])
    with pytest.raises(HookNameError):
        model.run_with_cache("Paris", names="*nothing*")


def test_fwd_hook_edits_propagate():
    model = tiny_model("qwen3")
    ref = model("Paris")
    out = model("Paris", fwd_hooks=[("blocks.2.hook_resid_post", lambda a, h: a * 0)])
    # zeroing the last residual makes the final norm output 0 -> logits are the unembedding bias (none) -> 0
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-6) and not torch.allclose(ref, out)


def test_unembed_reproduces_logits_including_softcap():
    model = tiny_model("gemma2")
    assert model.cfg.logit_softcap == 3.0
    logits, c = model.run_with_cache(PROMPTS, names=["ln_final.hook_normalized"])
    assert logits.abs().max() <= 3.0
    torch.testing.assert_close(model.unembed.logits(c["ln_final.hook_normalized"]), logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_hook_q_k_v_edit_round_trip(arch):
    """Returning a cloned q/k/v leaves logits unchanged (the view/put-back path is exact)."""
    model = tiny_model(arch)
    ref = model(PROMPTS)
    hooks = [(f"blocks.1.attn.hook_{x}", lambda a, h: a.clone()) for x in "qkv"] + [
        ("blocks.1.attn.hook_z", lambda a, h: a.clone()), ("blocks.1.hook_resid_mid", lambda a, h: a.clone())]
    torch.testing.assert_close(model(PROMPTS, fwd_hooks=hooks), ref, atol=1e-6, rtol=0)
