"""The dose sweep ``steer_latent``: neutral doses are the unsteered model, KL grows with the dose,
generation is deterministic, extra interventions compose, and bad inputs are one line."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mechscope.errors import ArtifactError, ConfigError, InterventionError, OutOfRangeError
from mechscope.interventions import Zero
from mechscope.steer.feature import kl_div, steer_latent
from mechscope.steer.latent import add_intervention
from tests.steer.saes import HOOK, make_sae
from tests.tiny import tiny_model

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def model():
    return tiny_model("gemma3")


@pytest.fixture(scope="module")
def sae(model):
    return make_sae(model)


def test_add_sweep_matches_plain_runs(model, sae, one_thread):
    res = steer_latent(model, sae, 9, PROMPT, [0, 10, 30], mode="add", generate=5, top_k=5)
    clean = model(PROMPT)[0, -1].log_softmax(-1)
    zero = res.doses[0]
    assert zero.kl == 0.0 and zero.top == res.clean_top and zero.text == model.generate(PROMPT, 5)
    n = model.to_tokens(PROMPT).input_ids.shape[1]
    for dose in res.doses[1:]:
        logits = model(PROMPT, interventions=[add_intervention(sae, 9, dose.value, range(1, n))])
        probs = logits[0, -1].softmax(-1)
        top = probs.topk(5)
        assert [t["id"] for t in dose.top] == top.indices.tolist()
        assert [t["prob"] for t in dose.top] == pytest.approx(top.values.tolist(), abs=1e-7)
        assert dose.kl == pytest.approx(kl_div(clean, logits[0, -1].log_softmax(-1)), abs=1e-9)
    assert 0 < res.doses[1].kl < res.doses[2].kl
    assert res.doses[2].text != zero.text
    # the followed tokens carry the probabilities of the top lists
    by_id = {t["id"]: t for t in res.tracked}
    for j, dose in enumerate(res.doses):
        for t in dose.top[:3]:
            if t["id"] in by_id:
                assert by_id[t["id"]]["probs"][j] == pytest.approx(t["prob"], abs=1e-6)
    assert res.activations == pytest.approx(sae.encode(model.run_with_cache(PROMPT, names=[HOOK])[1][HOOK][0])[:, 9].tolist())


def test_clamp_sweep_and_determinism(model, sae, one_thread):
    a = steer_latent(model, sae, 9, PROMPT, [0.0, 30.0], mode="clamp", generate=6)
    b = steer_latent(model, sae, 9, PROMPT, [0.0, 30.0], mode="clamp", generate=6)
    assert [d.to_dict() for d in a.doses] == [d.to_dict() for d in b.doses]
    assert a.doses[1].kl > 0.05 and a.doses[1].text != a.doses[0].text
    # clamping to 0 ablates the latent: it was active at two positions, so the run changes a little
    assert max(a.activations[1:]) > 0 and a.doses[0].kl > 0
    data = a.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["mode"] == "clamp" and data["greedy"] is True and data["latent"] == 9
    assert {"value", "top", "kl", "text"} <= set(data["doses"][0])
    assert data["positions"].startswith("every position but BOS")


def test_include_bos_and_extra_interventions(model, sae, one_thread):
    short = "The capital"  # within layer 2's sliding window (5), so the last position still sees BOS
    without = steer_latent(model, sae, 9, short, [30.0], generate=0)
    with_bos = steer_latent(model, sae, 9, short, [30.0], generate=0, include_bos=True)
    assert with_bos.doses[0].kl != without.doses[0].kl and "BOS included" in with_bos.positions
    assert without.doses[0].text == ""
    zero = Zero("blocks.0.hook_mlp_out")
    res = steer_latent(model, sae, 9, PROMPT, [0.0, 30.0], generate=3, interventions=[zero])
    ablated = model(PROMPT, interventions=[zero])[0, -1].softmax(-1)
    assert res.clean_top[0]["id"] == int(ablated.argmax())
    assert res.doses[0].kl == 0.0 and res.doses[0].text == model.generate(PROMPT, 3, interventions=[zero])


def test_bad_inputs(model, sae):
    with pytest.raises(OutOfRangeError, match=r"latent 32 out of range: the SAE has 32 latents \(0..31\)"):
        steer_latent(model, sae, 32, PROMPT, [1.0])
    with pytest.raises(ConfigError, match="unknown steering mode"):
        steer_latent(model, sae, 1, PROMPT, [1.0], mode="scale")
    with pytest.raises(ConfigError, match="--generate must be ≥ 0"):
        steer_latent(model, sae, 1, PROMPT, [1.0], generate=-1)
    with pytest.raises(ConfigError, match="finite number"):
        steer_latent(model, sae, 1, PROMPT, [math.nan])
    with pytest.raises(ConfigError, match="give 1 to 64 doses"):
        steer_latent(model, sae, 1, PROMPT, [])
    with pytest.raises(ConfigError, match="context window"):
        steer_latent(model, sae, 1, PROMPT, [1.0], generate=model.cfg.n_ctx)
    with pytest.raises(InterventionError, match="NaN or infinite"):
        steer_latent(model, sae, 1, PROMPT, [1e39], generate=0)  # finite in Python, inf in float32
    other = tiny_model("llama")
    with pytest.raises(ArtifactError, match="trained on another model"):
            steer_latent(other, sae, 1, PROMPT, [1.0])
    no_hook = make_sae(model, hook="blocks.1.hook_resid_postt")
    with pytest.raises(ArtifactError, match="does not have"):
        steer_latent(model, no_hook, 1, PROMPT, [1.0])


def test_sae_moves_to_model_dtype_free(model, one_thread):
    """A float64 SAE still steers a float32 model (the edit is cast to the activation's dtype)."""
    sae = make_sae(model).double()
    res = steer_latent(model, sae, 9, PROMPT, [0.0, 30.0], mode="clamp", generate=0)
    assert res.doses[1].kl > 0 and torch.isfinite(torch.tensor(res.doses[1].kl))
