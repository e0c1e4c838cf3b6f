"""Steering vectors on a tiny model: the difference of means equals a hand computation, PCA finds a
planted direction, a zero vector changes nothing, steering edits exactly the hooked positions, saved
vectors round-trip and refuse another model or hook, bad input is one line; and on the real Gemma the
built-in doubt set raises a doubt word."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import ArtifactError, ConfigError, HookNameError, OutputPathError
from mechscope.steer.apply import apply_vector, target_tokens, vector_edits
from mechscope.steer.vector import SteeringVector, load_vector, make_vector, pca_difference
from tests.tiny import tiny_model

HOOK = "blocks.1.hook_resid_post"
POS = ["The capital of France is Paris.", "Paris is the capital.", "France has a capital"]
NEG = ["The reliability of Wikipedia", "Wikipedia is very questionable.", "Sparse autoencoders find features"]
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def model():
    return tiny_model("gemma3")


def hand_acts(model, prompts, position):
    rows = []
    for p in prompts:  # one prompt at a time: no padding involved
        _, cache = model.run_with_cache(p, names=[HOOK])
        a = cache[HOOK][0].double()  # [pos, d]
        rows.append(a[1:].mean(0) if position == "mean" else a[-1] if position == "last" else a)
    return torch.stack(rows)


@pytest.mark.parametrize("position", ["mean", "last"])
def test_difference_of_means_by_hand(model, position, one_thread):
    v = make_vector(model, POS, NEG, HOOK, position=position)
    want = hand_acts(model, POS, position).mean(0) - hand_acts(model, NEG, position).mean(0)
    torch.testing.assert_close(v.vector, want.float(), rtol=1e-5, atol=1e-5)
    assert v.vector.shape == (model.cfg.d_model,) and v.method == "mean" and v.hook == HOOK
    assert v.meta["n_pos"] == 3 and v.meta["n_neg"] == 3 and v.meta["position"] == position
    assert v.fingerprint == model.fingerprint and math.isclose(v.norm, float(want.norm()), rel_tol=1e-5)


def test_per_position_vector_by_hand(model, one_thread):
    pos, neg = ["The capital of", "The capital is"], ["The reliability of", "The reliability is"]
    lengths = {len(model.to_tokens(p).input_ids[0]) for p in pos + neg}
    assert len(lengths) == 1, "the test needs prompts of one token length"
    v = make_vector(model, pos, neg, HOOK, position="all")
    want = hand_acts(model, pos, "all").mean(0) - hand_acts(model, neg, "all").mean(0)  # [pos, d]
    assert v.per_position and v.vector.shape == want.shape
    torch.testing.assert_close(v.vector, want.float(), rtol=1e-5, atol=1e-5)
    assert float(v.vector[0].abs().max()) == 0.0  # BOS is the same in every prompt
    with pytest.raises(ConfigError, match="one token length"):
        make_vector(model, POS, NEG, HOOK, position="all")


def test_pca_on_constructed_data():
    torch.manual_seed(1)
    d, n = 16, 40
    u = torch.nn.functional.normalize(torch.randn(d, dtype=torch.float64), dim=0)
    scale = 3.0 + torch.rand(n, dtype=torch.float64)  # every pair differs by 3..4 along u ...
    diffs = scale[:, None] * u + 0.2 * torch.randn(n, d, dtype=torch.float64)  # ... plus small noise
    neg = torch.randn(n, d, dtype=torch.float64)
    vec, share = pca_difference(neg + diffs, neg)
    mean = diffs.mean(0)
    direction = vec / vec.norm()
    assert float(direction @ u) > 0.99  # the planted direction, sign-aligned with the mean difference
    assert math.isclose(float(vec.norm()), float(mean @ direction), rel_tol=1e-9)  # scaled to m's projection
    assert float(vec.norm()) <= float(mean.norm()) and 0.9 < share <= 1.0
    vec2, _ = pca_difference(neg, neg + diffs)  # the other way round: the vector flips with the mean
    torch.testing.assert_close(vec2, -vec)


def test_pca_on_model_and_pairing(model, one_thread):
    v = make_vector(model, POS, NEG, HOOK, method="pca")
    m = make_vector(model, POS, NEG, HOOK)
    assert v.method == "pca" and 0 < v.meta["explained_variance"] <= 1 and v.meta["cosine_with_mean"] > 0
    assert v.norm <= m.norm + 1e-4
    with pytest.raises(ConfigError, match="3 positive and 2 negative"):
        make_vector(model, POS, NEG[:2], HOOK, method="pca")


@pytest.mark.parametrize("pos, neg, hook, message", [
    ([], NEG, HOOK, "no positive prompts"),
    (POS, [], HOOK, "no negative prompts"),
    (POS, ["fine", "  "], HOOK, "negative prompt 2 is empty"),
    ("a string", NEG, HOOK, "must be a list of strings"),
    (POS, NEG, "blocks.1.mlp.hook_post", "has shape [batch, pos, d_mlp]"),
    (POS, NEG, "blocks.1.attn.hook_pattern", "steering vectors live in [batch, pos, d_model] hooks"),
])  # fmt: skip
def test_make_refuses(model, pos, neg, hook, message):
    with pytest.raises(ConfigError) as exc:
        make_vector(model, pos, neg, hook)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_hook_and_options(model):
    with pytest.raises(HookNameError, match="unknown hook name"):
        make_vector(model, POS, NEG, "blocks.1.hook_resid_pots")
    with pytest.raises(ConfigError, match="unknown vector method"):
        make_vector(model, POS, NEG, HOOK, method="median")
    with pytest.raises(ConfigError, match="unknown position mode"):
        make_vector(model, POS, NEG, HOOK, position="first")


def test_zero_vector_changes_nothing(model, one_thread):
    zero = SteeringVector(torch.zeros(model.cfg.d_model), HOOK, model.name, model.fingerprint)
    clean = model(PROMPT)
    n = clean.shape[1]
    with model.intervene(vector_edits(zero, HOOK, 5.0, range(1, n))):
        torch.testing.assert_close(model(PROMPT), clean, rtol=0, atol=0)
    res = apply_vector(model, zero, PROMPT, [0, 3.0], generate=3, targets=["Paris"])
    assert res.coefs[1].top == res.reference.top and res.coefs[1].kl == 0.0
    assert res.coefs[1].target_logprob_shift == 0.0 and res.coefs[1].text == res.reference.text


def test_steering_changes_exactly_the_hooked_positions(model, one_thread):
    v = make_vector(model, POS, NEG, HOOK)
    later, earlier = "blocks.2.hook_resid_post", "blocks.0.hook_resid_post"
    _, clean = model.run_with_cache(PROMPT, names=[HOOK, later, earlier])
    n = clean[HOOK].shape[1]
    with model.intervene(vector_edits(v, HOOK, 2.0, range(1, n))):
        _, steered = model.run_with_cache(PROMPT, names=[HOOK, later, earlier])
    # earlier hooks untouched; at the hook exactly +2v after BOS; downstream, BOS (position 0) untouched
    torch.testing.assert_close(steered[earlier], clean[earlier], rtol=0, atol=0)
    torch.testing.assert_close(steered[HOOK][0, 1:], clean[HOOK][0, 1:] + 2.0 * v.vector, rtol=1e-5, atol=1e-5)
    for name in (HOOK, later):
        torch.testing.assert_close(steered[name][0, 0], clean[name][0, 0], rtol=0, atol=0)
        changed = (steered[name][0] - clean[name][0]).abs().amax(-1)  # [pos]
        assert bool((changed[1:] > 1e-4).all())
    # include_bos steers position 0 too
    with model.intervene(vector_edits(v, HOOK, 2.0, range(0, n))):
        _, bos = model.run_with_cache(PROMPT, names=[HOOK])
    torch.testing.assert_close(bos[HOOK][0, 0], clean[HOOK][0, 0] + 2.0 * v.vector, rtol=1e-5, atol=1e-5)


def test_per_position_edits_use_their_rows(model, one_thread):
    rows = torch.randn(3, model.cfg.d_model)
    v = SteeringVector(rows, HOOK, model.name, model.fingerprint, "mean")
    _, clean = model.run_with_cache(PROMPT, names=[HOOK])
    n = clean[HOOK].shape[1]
    assert n > 3
    with model.intervene(vector_edits(v, HOOK, 1.0, range(1, n))):
        _, steered = model.run_with_cache(PROMPT, names=[HOOK])
    delta = steered[HOOK][0] - clean[HOOK][0]  # [pos, d]
    assert float(delta[0].abs().max()) == 0.0
    torch.testing.assert_close(delta[1:3], rows[1:3], rtol=1e-4, atol=1e-4)  # rows at their positions
    torch.testing.assert_close(delta[3:], rows[1:].mean(0).expand(n - 3, -1), rtol=1e-4, atol=1e-4)  # then the tail


def test_apply_scores_targets(model, one_thread):
    v = make_vector(model, POS, NEG, HOOK)
    res = apply_vector(model, v, PROMPT, [1.0, 0.0, 4.0], targets=["Paris", " the"], generate=2, top_k=4)
    assert [c.coef for c in res.coefs] == [1.0, 0.0, 4.0] and res.reference.coef == 0.0
    assert [t["token"] for t in res.targets] == [" Paris", " the"]
    n = model.to_tokens(PROMPT).input_ids.shape[1]
    log0 = model(PROMPT)[0, -1].float().log_softmax(-1)
    log4 = model(PROMPT, interventions=vector_edits(v, HOOK, 4.0, range(1, n)))[0, -1].float().log_softmax(-1)
    ids = [t["id"] for t in res.targets]
    want = float((log4[ids] - log0[ids]).mean())
    assert math.isclose(res.coefs[2].target_logprob_shift, want, rel_tol=1e-4, abs_tol=1e-5)
    assert res.coefs[1].target_logprob_shift == 0.0 and res.coefs[1].kl == 0.0
    assert res.coefs[2].target_ranks[0] == int((log4 > log4[ids[0]]).sum()) + 1
    assert len(res.coefs[0].top) == 4 and all(len(t["probs"]) == 3 for t in res.tracked)
    data = res.to_dict()
    assert set(data["coefs"][0]) >= {"coef", "top", "target_logprob_shift", "text"}
    assert {"prompt", "hook", "targets", "tokens", "seconds"} <= set(data)


def test_target_spacing(model):
    assert target_tokens(model, "The capital of", ["Paris"])[0]["token"] == " Paris"
    assert target_tokens(model, "The capital of ", ["Paris"])[0]["token"] != " Paris"  # the prompt has the space
    with pytest.raises(ConfigError, match="a target word must be some text"):
        target_tokens(model, PROMPT, [" "])
    with pytest.raises(ConfigError, match="is not valid UTF-8 text"):
        target_tokens(model, PROMPT, ["\udcff\udcfeabc"])


@pytest.mark.parametrize("coefs", [[float("nan")], [0.0, float("inf")], [-float("inf")]])
def test_nan_coefficient_refused(model, coefs):
    v = SteeringVector(torch.ones(model.cfg.d_model), HOOK, model.name, model.fingerprint)
    with pytest.raises(ConfigError, match="a steering coefficient must be a finite number"):
        apply_vector(model, v, PROMPT, coefs)


def test_save_load_round_trip_and_refusals(model, tmp_path, one_thread):
    v = make_vector(model, POS, NEG, HOOK, method="pca")
    path = v.save(tmp_path / "v")
    back = load_vector(path, model)
    assert torch.equal(back.vector, v.vector) and back.to_dict() == v.to_dict()
    assert load_vector(path, model, hook=HOOK).hook == HOOK
    with pytest.raises(ConfigError, match=f"made at {HOOK}, not blocks.2.hook_resid_post"):
        load_vector(path, model, hook="blocks.2.hook_resid_post")
    other = tiny_model("llama")
    with pytest.raises(ConfigError) as exc:
        load_vector(path, other)
    msg = str(exc.value)
    assert "another model" in msg and v.fingerprint in msg and other.fingerprint in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="another model"):
        apply_vector(other, v, PROMPT, [1.0])
    with pytest.raises(ArtifactError, match="no steering-vector at"):
        load_vector(tmp_path / "missing")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError):  # a user's folder is refused, never emptied
        v.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    v.save(path)  # an earlier vector's folder is replaced


def test_vector_validation():
    with pytest.raises(ConfigError, match="finite"):
        SteeringVector(torch.tensor([1.0, float("nan")]), HOOK, "m", "f")
    with pytest.raises(ConfigError, match=r"\[d_model\] or \[pos, d_model\]"):
        SteeringVector(torch.zeros(2, 2, 2), HOOK, "m", "f")


@pytest.mark.gemma
def test_builtin_doubt_raises_questionable_on_gemma(gemma):
    """The built-in doubt set's vector at block 9 raises ' questionable' after "The reliability of
    Wikipedia is very" at c = 0.5 (measured +0.54 nats, benchmarks/RESULTS.md; asserted > 0.25)."""
    from mechscope.steer.builtin import builtin_set

    pos, neg = builtin_set("doubt")
    v = make_vector(gemma, pos, neg, "blocks.9.hook_resid_post")
    res = apply_vector(gemma, v, "The reliability of Wikipedia is very", [0.5], targets=["questionable"], top_k=5)
    assert res.targets[0]["token"] == " questionable"
    assert res.coefs[0].target_logprob_shift > 0.25
    assert res.coefs[0].target_ranks[0] <= res.reference.target_ranks[0]
