"""Shape annotations (jaxtyping) on the public tensor functions hold on real calls."""

from __future__ import annotations

import typing

import jaxtyping
import torch

from mechscope.model.activation_cache import ActivationCache
from mechscope.model.hooked import HookedModel
from tests.tiny import tiny_model


def _check(fn, *args, **kwargs):
    hints = typing.get_type_hints(fn)
    ret = hints["return"]
    if typing.get_origin(ret) is tuple:
        ret = typing.get_args(ret)[0]
    out = fn(*args, **kwargs)
    value = out[0] if isinstance(out, tuple) else out
    assert isinstance(value, ret), f"{fn.__qualname__} returned {tuple(value.shape)}, annotated {ret}"
    return value


@jaxtyping.jaxtyped(typechecker=None)
def _consistent(model: HookedModel, prompts):
    # within one jaxtyped scope the named dims (batch, pos, d_vocab, d_model) must agree across calls
    logits = _check(HookedModel.forward, model, prompts)
    _check(HookedModel.run_with_cache, model, prompts, names="*resid_post")
    normed = _check(HookedModel.apply_final_norm, model, torch.randn(*logits.shape[:2], model.cfg.d_model))
    assert isinstance(normed, jaxtyping.Float[torch.Tensor, "batch pos d_model"])
    from mechscope.model.unembed import Unembed

    _check(Unembed.logits, model.unembed, normed)
    _check(Unembed.__call__, model.unembed, torch.randn(*logits.shape[:2], model.cfg.d_model))
    assert isinstance(model.W_U, jaxtyping.Float[torch.Tensor, "d_model d_vocab"])
    assert isinstance(model.W_E, jaxtyping.Float[torch.Tensor, "d_vocab d_model"])


def test_annotations_hold_and_agree():
    for arch in ("gemma3", "gpt2"):
        _consistent(tiny_model(arch), ["The capital of France is", "Paris"])


def test_stack_has_layer_axis():
    model = tiny_model("llama")
    _, cache = model.run_with_cache("Paris", names="*resid_post")
    assert isinstance(cache, ActivationCache)
    assert cache.stack("resid_post").shape[0] == model.cfg.n_layers
