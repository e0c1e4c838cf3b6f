"""Activation patching finds a planted path; batched patching equals one forward per patch; attribution
patching is exact on a linear model; prompts of different lengths need an alignment."""

from __future__ import annotations

import pytest
import torch

from mechscope.attribution.atp import attribution_patching
from mechscope.attribution.patching import activation_patching, naive_patching
from mechscope.errors import ConfigError, PromptError
from tests.tiny import tiny_model

CLEAN, CORRUPT = "The capital of France is", "The capital of Wikipedia is"
ARGS = (CLEAN, CORRUPT, " Paris", " reliability")
ALL = "resid,attn,mlp,heads"


def planted(arch: str = "llama", layer: int = 1, head: int = 3):
    """A tiny model whose only attention output is head ``head`` of layer ``layer``: information moves
    between positions there and nowhere else."""
    model = tiny_model(arch)
    H, dh = model.cfg.n_heads, model.cfg.d_head
    with torch.no_grad():
        for l in range(model.cfg.n_layers):
            W = model.spec(f"blocks.{l}.attn.hook_z").module.weight  # [d_model, H·dh]
            keep = torch.zeros(H * dh, dtype=torch.bool)
            if l == layer:
                keep[head * dh : (head + 1) * dh] = True
            W[:, ~keep] = 0
    return model


def test_planted_path_is_found():
    model = planted(layer=1, head=3)
    res = activation_patching(model, *ARGS, what=ALL, batch_size=5)
    n_pos = len(res.tokens)
    changed = [p for p, (a, b) in enumerate(zip(res.tokens, res.corrupt_tokens)) if a != b]
    assert len(changed) == 1
    (p,) = changed
    attn = res.effects["attn_out"]
    # the answer reaches the last position only through layer 1's attention there
    assert attn[1, n_pos - 1] == pytest.approx(1.0, abs=1e-4)
    attn[1, n_pos - 1] = 0
    assert attn.abs().max() < 1e-4
    resid = res.effects["resid_pre"]
    assert torch.allclose(resid[:2, p], torch.ones(2), atol=1e-4)  # before layer 1 it sits at the subject
    assert resid[2, n_pos - 1] == pytest.approx(1.0, abs=1e-4)  # after it, at the last position
    assert resid[2, p] == pytest.approx(0.0, abs=1e-4)
    heads = res.heads
    assert heads[1, 3] == pytest.approx(1.0, abs=1e-4)
    heads[1, 3] = 0
    assert heads.abs().max() < 1e-4


def test_batched_equals_one_forward_per_patch(tiny):
    res = activation_patching(tiny, *ARGS, what="resid", batch_size=4)
    torch.testing.assert_close(res.effects["resid_pre"], naive_patching(tiny, *ARGS), atol=1e-4, rtol=0)


def linear_gpt2():
    """Tiny GPT-2 made linear: norms are the identity, attention writes nothing, the MLP has no
    nonlinearity. The logit difference is then an affine function of every activation."""
    model = tiny_model("gpt2")
    with torch.no_grad():
        for name, module in model.hf.named_modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.forward = lambda x: x
            if name.endswith("attn.c_proj"):
                module.weight.zero_()
                module.bias.zero_()
            if name.endswith("mlp"):
                module.act = torch.nn.Identity()
    return model


def test_attribution_exact_on_linear_model():
    model = linear_gpt2()
    args = ("The capital of France", "The capital of Wikipedia", " Paris", " reliability")  # last tokens differ
    exact = activation_patching(model, *args, what=ALL)
    approx = attribution_patching(model, *args, what=ALL)
    assert exact.effects["resid_pre"][:, -1].abs().min() > 0.5  # something to estimate
    for k in exact.effects:
        torch.testing.assert_close(approx.effects[k], exact.effects[k], atol=1e-4, rtol=0)
    torch.testing.assert_close(approx.heads, exact.heads, atol=1e-4, rtol=0)
    assert approx.clean_logit_diff == pytest.approx(exact.clean_logit_diff, abs=1e-5)
    assert approx.corrupt_logit_diff == pytest.approx(exact.corrupt_logit_diff, abs=1e-5)


def test_attribution_tracks_exact(tiny):
    exact = activation_patching(tiny, *ARGS, what="resid")
    approx = attribution_patching(tiny, *ARGS, what="resid")
    assert approx.effects["resid_pre"].shape == exact.effects["resid_pre"].shape
    # positions before the first differing token are equal in both runs (causal): both say 0 there
    assert approx.effects["resid_pre"][:, :4].abs().max() < 1e-6 and exact.effects["resid_pre"][:, :4].abs().max() < 1e-5
    assert not torch.isnan(approx.effects["resid_pre"]).any()


def test_lengths_need_align():
    model = tiny_model("llama")
    longer = "The capital of the France is"
    with pytest.raises(PromptError, match="--align"):
        activation_patching(model, CLEAN, longer, " Paris", " reliability")
    left = activation_patching(model, longer, CLEAN, " Paris", " reliability", align="left")
    right = activation_patching(model, longer, CLEAN, " Paris", " reliability", align="right")
    n = len(left.tokens)
    assert n == len(left.corrupt_tokens) + 1
    assert torch.isnan(left.effects["resid_pre"][:, n - 1]).all() and not torch.isnan(left.effects["resid_pre"][:, 0]).any()
    assert torch.isnan(right.effects["resid_pre"][:, 0]).all() and not torch.isnan(right.effects["resid_pre"][:, -1]).any()
    with pytest.raises(ConfigError):
        activation_patching(model, *ARGS, align="middle")
    with pytest.raises(ConfigError, match="--what"):
        activation_patching(model, *ARGS, what="resid,neurons")


def test_same_logit_diff_refused():
    model = tiny_model("llama")
    with pytest.raises(PromptError, match="same logit difference"):
        activation_patching(model, CLEAN, CLEAN, " Paris", " reliability")


def test_grad_drop(tiny):
    plain = attribution_patching(tiny, *ARGS, what="mlp,heads")
    gd = attribution_patching(tiny, *ARGS, what="mlp,heads", grad_drop=True)
    assert gd.method == "attribution+graddrop"
    last = tiny.cfg.n_layers - 1
    assert (gd.effects["mlp_out"] >= 0).all() and (gd.heads >= 0).all()
    # the last MLP writes straight to the output: every dropped layer but its own leaves its estimate as is
    torch.testing.assert_close(gd.effects["mlp_out"][last], plain.effects["mlp_out"][last].abs(), atol=1e-5, rtol=1e-4)
