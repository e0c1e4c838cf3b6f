"""The public hook session: spec(), collect() that stops early, the Unembed head, bound interventions."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from mechscope.errors import HookNameError, InterventionError, OutOfRangeError
from mechscope.model.bound import BoundIntervention
from mechscope.model.interventions import Add, ResampleAblate, Set, TensorRef, from_json
from mechscope.model.unembed import Unembed
from tests.tiny import tiny_model

PROMPTS = ["The capital of France is", "Sparse autoencoders find"]
ARCHS = ["gemma3", "gemma2", "llama", "gpt2", "gpt-neox"]


@pytest.mark.parametrize("arch", ARCHS)
def test_collect_equals_run_with_cache_and_stops_after_the_last_hook(arch):
    model = tiny_model(arch)
    names = ["blocks.0.hook_resid_mid", "blocks.1.attn.hook_pattern", "blocks.1.hook_mlp_out"]
    _, full = model.run_with_cache(PROMPTS, names=names)
    calls = {"block2": 0, "head": 0}
    later = model.hf.get_submodule(model.adapter.layers)[2]
    h1 = later.register_forward_pre_hook(lambda *a: calls.__setitem__("block2", calls["block2"] + 1))
    h2 = model.unembed.module.register_forward_pre_hook(lambda *a: calls.__setitem__("head", calls["head"] + 1))
    try:
        got = model.collect(PROMPTS, names)
        assert calls == {"block2": 0, "head": 0}  # neither the last block nor the unembedding ran
        model.collect(PROMPTS, names, stop_at=2)  # a later stop point runs block 2, still no logits
        assert calls == {"block2": 1, "head": 0}
        model.collect(PROMPTS, "ln_final.hook_normalized")
        assert calls["head"] == 0
    finally:
        h1.remove()
        h2.remove()
    assert list(got) == names
    for n in names:
        assert torch.equal(got[n], full[n]), n
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.hf.modules())


def test_collect_respects_positions_interventions_and_grad():
    model = tiny_model("gemma3")
    name = "blocks.1.hook_resid_post"
    edit = Set("blocks.0.hook_resid_post", positions=[1], value=0.5)
    _, ref = model.run_with_cache(PROMPTS, names=[name], positions=[-1], interventions=[edit])
    got = model.collect(PROMPTS, name, positions=[-1], interventions=[edit])
    assert got[name].shape[1] == 1 and torch.equal(got[name], ref[name])
    g = model.collect(PROMPTS, name, grad=True)
    assert g[name].requires_grad
    with pytest.raises(HookNameError, match="at least one"):
        model.collect(PROMPTS, [])
    with pytest.raises(OutOfRangeError, match="layer 9 out of range"):
        model.collect(PROMPTS, name, stop_at=9)


def test_spec_is_public_and_explains_bad_names():
    model = tiny_model("llama")
    spec = model.spec("blocks.1.attn.hook_z")
    assert spec.layer == 1 and spec.shape == ("batch", "pos", "n_heads", "d_head") and spec.head_axis == 2
    with pytest.raises(HookNameError, match="did you mean"):
        model.spec("blocks.1.hook_resid_pots")
    with pytest.raises(HookNameError, match="must be a string"):
        model.spec(5)


@pytest.mark.parametrize("arch", ["gemma2", "gpt2", "gpt-neox"])
def test_unembed_is_the_models_own_head(arch):
    model = tiny_model(arch)
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    logits, cache = model.run_with_cache(PROMPTS, names=[last, "ln_final.hook_normalized"])
    assert isinstance(model.unembed, Unembed) and model.unembed.softcap == model.cfg.logit_softcap
    torch.testing.assert_close(model.unembed(cache[last]), logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.unembed.norm(cache[last]), cache["ln_final.hook_normalized"], atol=1e-6, rtol=0)
    assert model.unembed.W_U.shape == (model.cfg.d_model, model.cfg.d_vocab)
    assert torch.equal(model.W_U, model.unembed.W_U)


def test_bind_resolves_tensors_once_per_run(monkeypatch):
    """A bound intervention builds its tensors at bind time; forwards and generate steps reuse them."""
    import mechscope.model.bound as bound_mod

    model = tiny_model("gemma3")
    made = {"n": 0}
    real = bound_mod._resolve

    def counting(*a, **k):
        made["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(bound_mod, "_resolve", counting)
    vec = torch.randn(model.cfg.d_model)
    edit = Add("blocks.1.hook_resid_post", vector=vec, scale=2.0)
    model.generate("The capital", max_new_tokens=4, interventions=[edit])
    assert made["n"] == 1  # one bind for the prompt forward and all decoding steps
    bound = model.bind([edit])
    assert isinstance(bound[0], BoundIntervention) and made["n"] == 2
    ref = model(PROMPTS, interventions=[edit])
    for _ in range(3):
        assert torch.equal(model(PROMPTS, interventions=bound), ref)
    assert made["n"] == 3  # the forward with the plain spec bound once more; bound ones never
    other = tiny_model("llama")
    with pytest.raises(InterventionError, match="bound to another model"):
        other(PROMPTS, interventions=bound)


def test_tensor_references_from_a_file_and_from_bind_time(tmp_path):
    model = tiny_model("gemma3")
    name = "blocks.1.hook_resid_pre"
    vec = torch.randn(model.cfg.d_model)
    ref = model(PROMPTS, interventions=[Add(name, vector=vec)])
    save_file({"steer": vec}, str(tmp_path / "v.safetensors"))
    from_file = from_json(f'{{"kind": "add", "hook": "{name}", "vector": {{"file": "{tmp_path / "v.safetensors"}", "key": "steer"}}}}')
    assert isinstance(from_file[0].vector, TensorRef)
    assert torch.equal(model(PROMPTS, interventions=from_file), ref)
    named = Add(name, vector={"tensor": "v"})
    assert named.to_dict()["vector"] == {"tensor": "v"}
    assert torch.equal(model(PROMPTS, interventions=[named], tensors={"v": vec}), ref)
    # a cached activation patched in as a tensor stays a tensor (no list round trip)
    _, cache = model.run_with_cache(PROMPTS[::-1], names=[name])
    patch = ResampleAblate(name, source=cache[name])
    assert patch.source is cache[name]
    _, got = model.run_with_cache(PROMPTS, names=[name], interventions=[patch])
    assert torch.equal(got[name], cache[name])
    for bad, msg in [
        (Add(name, vector={"tensor": "nope"}), "was not passed"),
        (Add(name, vector={"file": str(tmp_path / "missing.safetensors"), "key": "steer"}), "does not exist"),
        (Add(name, vector={"file": str(tmp_path / "v.safetensors"), "key": "other"}), "has no tensor 'other'"),
    ]:
        with pytest.raises(InterventionError, match=msg):
            model(PROMPTS, interventions=[bad])
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(InterventionError, match="not a readable safetensors file"):
        model(PROMPTS, interventions=[Add(name, vector={"file": str(tmp_path / "junk.safetensors"), "key": "steer"})])


@pytest.mark.parametrize("text,msg", [
    ('[1, 2]', "must be a JSON object"),
    ('{"kind": "set", "hook": "blocks.0.hook_resid_post", "value": "abc"}', "set value must be a number"),
    ('{"kind": "set", "hook": "blocks.0.hook_resid_post", "dims": [Infinity]}', "must be finite"),
    ('{"kind": "set", "hook": "blocks.0.hook_resid_post", "value": NaN}', "must be finite"),
    ('{"kind": "zero", "hook": 5}', "hook must be a hook name"),
    ('{"kind": "zero"}', "needs a hook"),
    ('{"kind": "zero", "hook": "blocks.0.hook_resid_post", "dims": "12"}', "dims must be an int or a list"),
    ('{"kind": "zero", "hook": "blocks.0.hook_resid_post", "dims": [1.5, true]}', "whole numbers"),
    ('{"kind": "zero", "hook": "blocks.0.hook_resid_post", "dims": [true]}', "whole numbers"),
    ('{"kind": "add", "hook": "blocks.0.hook_resid_post", "vector": [[1, 2]]}', "flat list"),
    ('{"kind": "clamp", "hook": "blocks.0.hook_resid_post", "min": "1"}', "clamp min must be a number"),
    ('{"kind": "scale", "hook": "blocks.0.hook_resid_post", "factor": 1e999}', "must be finite"),
    ('{"kind": "add", "hook": "blocks.0.hook_resid_post", "vector": {"file": "a"}}', "needs a key"),
    ('[' * 100_000, "nested too deeply|not valid JSON"),
])  # fmt: skip
def test_intervention_json_is_validated_field_by_field(text, msg):
    with pytest.raises(InterventionError, match=msg) as err:
        from_json(text)
    assert "\n" not in str(err.value)


def test_non_finite_tensors_are_refused():
    with pytest.raises(InterventionError, match="NaN or infinite"):
        Add("blocks.0.hook_resid_post", vector=torch.tensor([1.0, float("nan")]))


def test_fingerprint_depends_on_content_not_on_where_it_was_loaded_from(tmp_path):
    a = tiny_model("llama")
    a.hf.config._name_or_path = str(tmp_path / "one")
    b = tiny_model("llama")
    b.hf.config._name_or_path = str(tmp_path / "two")
    a._fingerprint = b._fingerprint = None
    assert a.fingerprint == b.fingerprint
    assert tiny_model("qwen2").fingerprint != a.fingerprint
