"""The two latent edits against plain references: ``add`` is a manual hook adding V·W_dec[N] at every
position but BOS, ``clamp`` is SAE(x with f_N := V) + (y - SAE(x)); both exact at the neutral dose."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError, OutOfRangeError
from mechscope.steer.latent import LatentClamp, add_intervention, check_latent, check_steerable, steered_positions
from tests.steer.saes import HOOK, make_sae
from tests.tiny import tiny_model

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def model():
    return tiny_model("gemma3")


def n_tokens(model) -> int:
    return model.to_tokens(PROMPT).input_ids.shape[1]


def add_hook(row: torch.Tensor, value: float, first: int = 1):
    def fn(act, spec):
        out = act.clone()
        out[:, first:] += value * row
        return out

    return fn


def spliced_hook(sae, latent: int, value: float, captured: dict | None = None):
    """Reference clamp: decode the edited latents, add the error term back (positions 1.. only)."""

    def fn(act, spec):
        x = act if captured is None else captured["x"]
        f = sae.encode(x)
        edited = f.clone()
        edited[..., latent] = value
        new = sae.decode(edited, x) + (act - sae.decode(f, x))
        out = act.clone()
        out[:, 1:] = new[:, 1:]
        return out

    return fn


def test_add_zero_is_exact_and_add_equals_manual_hook(model, one_thread):
    sae = make_sae(model)
    clean = model(PROMPT)
    where = steered_positions(n_tokens(model))
    assert where == tuple(range(1, n_tokens(model)))
    torch.testing.assert_close(model(PROMPT, interventions=[add_intervention(sae, 5, 0.0, where)]), clean, rtol=0, atol=0)
    steered = model(PROMPT, interventions=[add_intervention(sae, 5, 3.0, where)])
    manual = model(PROMPT, fwd_hooks=[(HOOK, add_hook(sae.W_dec[5].detach(), 3.0))])
    torch.testing.assert_close(steered, manual, rtol=0, atol=1e-6)
    assert (steered - clean).abs().max() > 1e-2
    # BOS untouched: the first position's logits are the clean ones (causal model)
    torch.testing.assert_close(steered[:, 0], clean[:, 0], rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["topk", "relu", "jumprelu"])
def test_clamp_equals_spliced_sae_with_error_term(model, arch, one_thread):
    sae = make_sae(model, arch=arch)
    for latent, value in ((2, 4.0), (7, 0.0), (11, -1.5)):
        clamp = LatentClamp(sae, latent, value)
        with model.hooks(clamp.hooks()):
            got = model(PROMPT)
        ref = model(PROMPT, fwd_hooks=[(HOOK, spliced_hook(sae, latent, value))])
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)


def test_clamp_to_own_value_leaves_logits_unchanged(model, one_thread):
    sae = make_sae(model)
    clean, cache = model.run_with_cache(PROMPT, names=[HOOK])
    f = sae.encode(cache[HOOK][0]).detach()  # [pos, d_sae]
    pos, latent = 3, int(f[3].argmax())
    assert f[pos, latent] > 0
    clamp = LatentClamp(sae, latent, f[pos, latent].item(), positions=[pos])
    with model.hooks(clamp.hooks()):
        torch.testing.assert_close(model(PROMPT), clean, rtol=0, atol=0)
    silent = int((f[1:] == 0).all(0).nonzero()[0])  # a latent off at every position but BOS: clamp to 0 is a no-op
    with model.hooks(LatentClamp(sae, silent, 0.0).hooks()):
        torch.testing.assert_close(model(PROMPT), clean, rtol=0, atol=0)
    with model.hooks(LatentClamp(sae, latent, f[pos, latent].item() + 1.0, positions=[pos]).hooks()):
        assert (model(PROMPT) - clean).abs().max() > 1e-3


@pytest.mark.parametrize("arch", ["topk", "relu"])
def test_clamp_sets_the_reencoded_latent(model, arch, one_thread):
    """With a unit decoder row and W_enc[:, N] = W_dec[N] (tied init) and the latent active everywhere,
    re-encoding the edited activation gives exactly V at the steered positions and f_N elsewhere."""
    sae = make_sae(model, arch=arch)
    latent, value = 6, 45.0
    with torch.no_grad():
        sae.W_dec[latent] /= sae.W_dec[latent].norm()
        sae.W_enc[:, latent] = sae.W_dec[latent]
        sae.b_enc[latent] = 30.0  # active at every position, and in the top k (|resid| is ~18 here)
    _, clean = model.run_with_cache(PROMPT, names=[HOOK])
    with model.hooks(LatentClamp(sae, latent, value).hooks()):
        _, cache = model.run_with_cache(PROMPT, names=[HOOK])
    before = sae.encode(clean[HOOK][0])[:, latent]
    after = sae.encode(cache[HOOK][0])[:, latent]
    assert (before[1:] > 0).all() and (before[1:] - value).abs().min() > 0.5
    torch.testing.assert_close(after[1:], torch.full_like(after[1:], value), rtol=0, atol=1e-4)
    assert after[0] == before[0]  # BOS left alone


def test_transcoder_clamp_reads_input_and_edits_target(model, one_thread):
    hook, target = "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"
    sae = make_sae(model, hook=hook, target=target, skip=True)
    with torch.no_grad():
        sae.W_skip.normal_(0, 0.05, generator=torch.Generator().manual_seed(3))
    captured: dict = {}

    def capture(act, spec):
        captured["x"] = act

    clamp = LatentClamp(sae, 4, 3.0)
    assert [n for n, _ in clamp.hooks()] == [hook, target]
    with model.hooks(clamp.hooks()):
        got = model(PROMPT)
    ref = model(PROMPT, fwd_hooks=[(hook, capture), (target, spliced_hook(sae, 4, 3.0, captured))])
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    assert (got - model(PROMPT)).abs().max() > 1e-3
    check_steerable(model, sae)
    backwards = make_sae(model, hook="blocks.2.hook_resid_post", target="blocks.1.hook_mlp_out")
    with pytest.raises(ConfigError, match="fires after its target"):
        check_steerable(model, backwards)


def _greedy_reference(model, prompt: str, n: int, make_hooks, make_edits=lambda n_pos: []):
    """Greedy decoding with full (uncached) forwards: each step reruns the whole sequence."""
    ids = model.to_tokens(prompt).input_ids
    for _ in range(n):
        with model.hooks(make_hooks(), make_edits(ids.shape[1])):
            nxt = model(ids)[0, -1].argmax()
        ids = torch.cat([ids, nxt.view(1, 1)], 1)
    return ids[0, model.to_tokens(prompt).input_ids.shape[1] :].tolist()


@pytest.mark.parametrize("mode", ["add", "clamp"])
def test_edits_during_cached_generation_match_full_forwards(model, mode, one_thread):
    """Cached decoding feeds one position per step: the edits must still see absolute positions."""
    sae = make_sae(model)
    n = 6
    n_prompt = n_tokens(model)
    if mode == "add":
        where = steered_positions(n_prompt + n)
        with model.intervene([add_intervention(sae, 9, 30.0, where)]):
            text = model.generate(PROMPT, n)
        ref = _greedy_reference(model, PROMPT, n, list, lambda p: [add_intervention(sae, 9, 30.0, range(1, p))])
    else:
        with model.hooks(LatentClamp(sae, 9, 30.0).hooks()):
            text = model.generate(PROMPT, n)
        ref = _greedy_reference(model, PROMPT, n, lambda: LatentClamp(sae, 9, 30.0).hooks())
    assert text == model.tokenizer.decode(ref, skip_special_tokens=True)
    assert text != model.generate(PROMPT, n)


def test_bad_latents_and_positions(model):
    sae = make_sae(model, width=32)
    assert check_latent(sae, 31) == 31
    for bad in (32, -1):
        with pytest.raises(OutOfRangeError, match=r"has 32 latents \(0..31\)"):
            check_latent(sae, bad)
    with pytest.raises(ConfigError, match="whole number"):
        check_latent(sae, 1.5)
    with pytest.raises(OutOfRangeError, match="absolute"):
        steered_positions(5, [-1])
