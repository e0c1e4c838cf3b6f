"""Model diffing on tiny models: exact zero against itself, planted differences found at the right
layer and direction, one-line refusals, the on-the-fly reduction against a brute-force reference,
the difference lens against a hand computation, steering, NaN guards."""

from __future__ import annotations

import copy

import pytest
import torch

from mechscope.diff import DiffConfig, check_pair, diff_activations, diff_models, lens_logits, norm_gain
from mechscope.diff.pair import tokenize_prompts
from mechscope.diff.steer import monotone_prefix, steer_sweep
from mechscope.errors import CacheError, ConfigError
from mechscope.model.hooked import HookedModel
from tests.tiny import TEXT, tiny_model

PROMPTS = [s for s in TEXT.split(". ") if s][:7]


@pytest.fixture(scope="module")
def gpt2():
    return tiny_model("gpt2")


def planted(base, layer: int = 1, dim: int = 5, size: float = 3.0):
    """A copy of a tiny GPT-2 whose block ``layer`` MLP output bias gains ``size`` on ``dim``."""
    hf = copy.deepcopy(base.hf)
    with torch.no_grad():
        hf.transformer.h[layer].mlp.c_proj.bias[dim] += size
    return HookedModel(hf, base.tokenizer, name="planted")


def seqs_of(base, tuned=None, seq_len: int = 16):
    return tokenize_prompts(base, tuned or base, PROMPTS, seq_len)


def test_diff_of_a_model_with_itself_is_exactly_zero(one_thread):
    m = tiny_model("gemma3")
    res = diff_models(m, m, seqs_of(m), DiffConfig(seq_len=16, batch_size=3, components=("attn_out", "mlp_out")),
                      targets=["Paris"], progress=False)  # fmt: skip
    s = res.stats
    assert s.norm_by_layer.abs().max() == 0 and s.norm_by_pos.abs().max() == 0 and s.mean_diff.abs().max() == 0
    assert all(v.abs().max() == 0 for v in s.component_norms.values())
    assert all(row["target_logprob_shift"] == 0 for row in res.steer if row["coef"] == 0)
    assert s.base_norm_by_layer.min() > 0 and s.n_tokens == sum(len(x) - 1 for x in seqs_of(m))


def test_planted_difference_found_at_its_layer_and_direction(gpt2, one_thread):
    tuned = planted(gpt2, layer=1, dim=5, size=3.0)
    res = diff_models(gpt2, tuned, seqs_of(gpt2, tuned), DiffConfig(seq_len=16, batch_size=4), progress=False)
    s = res.stats
    assert s.norm_by_layer[0] == 0  # before the edit: nothing
    first = next(j for j, v in enumerate(s.norm_by_layer.tolist()) if v > 0)
    assert s.layers[first] == 1
    v = torch.zeros(64)
    v[5] = 3.0
    torch.testing.assert_close(s.mean_diff[1], v, atol=1e-5, rtol=0)  # a bias adds the same vector everywhere
    assert torch.allclose(s.norm_by_layer[1], torch.tensor(3.0), atol=1e-5)
    # the lens of the planted direction is W_U · (g ⊙ v) / rms
    g = norm_gain(tuned)
    want = (tuned.unembed.weight @ (g * v)) / s.base_rms[1]
    torch.testing.assert_close(res.lens[1], want, atol=1e-4, rtol=1e-4)


def test_reduction_matches_brute_force(gpt2, one_thread):
    tuned = planted(gpt2)
    with torch.no_grad():  # a nonlinear difference too: perturb an attention weight
        tuned.hf.transformer.h[0].attn.c_attn.weight.mul_(1.1)
    seqs = seqs_of(gpt2, tuned, 12)
    got = diff_activations(gpt2, tuned, seqs, DiffConfig(seq_len=12, batch_size=3), progress=False)
    norms, rel, mean, pos = [], [], [], []
    for layer in range(3):
        name = f"blocks.{layer}.hook_resid_post"
        dn_all, an_all, d_all = [], [], []
        by_pos: dict[int, list[float]] = {}
        for ids in seqs:
            a = gpt2.run_with_cache(torch.tensor([ids]), [name])[1][name][0]
            t = tuned.run_with_cache(torch.tensor([ids]), [name])[1][name][0]
            d = t - a
            for p in range(len(ids)):
                by_pos.setdefault(p, []).append(float(d[p].norm()))
            dn_all += [float(d[p].norm()) for p in range(1, len(ids))]
            an_all += [float(a[p].norm()) for p in range(1, len(ids))]
            d_all += [d[p] for p in range(1, len(ids))]
        norms.append(sum(dn_all) / len(dn_all))
        rel.append(sum(x / y for x, y in zip(dn_all, an_all)) / len(dn_all))
        mean.append(torch.stack(d_all).mean(0))
        pos.append([sum(v) / len(v) for _, v in sorted(by_pos.items())])
    torch.testing.assert_close(got.norm_by_layer, torch.tensor(norms), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.rel_norm, torch.tensor(rel), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.mean_diff, torch.stack(mean), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.norm_by_pos, torch.tensor(pos), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["gemma3", "llama", "gpt2"])
def test_norm_gain_is_the_final_norms_weight(arch):
    m = tiny_model(arch)
    norm = m.unembed.final_norm
    want = norm.weight.detach() + (1.0 if arch == "gemma3" else 0.0)  # Gemma's RMSNorm multiplies by 1 + w
    torch.testing.assert_close(norm_gain(m), want, atol=1e-4, rtol=1e-4)
    vec = torch.randn(2, 64)
    rms = torch.tensor([2.0, 0.5])
    torch.testing.assert_close(lens_logits(m, vec, rms), (vec * want / rms[:, None]) @ m.unembed.weight.T, atol=1e-4, rtol=1e-4)


def test_models_that_differ_are_refused_in_one_line():
    g, llama = tiny_model("gemma3"), tiny_model("llama")
    with pytest.raises(ConfigError, match="differ in architecture") as e:
        check_pair(g, llama)
    assert "\n" not in str(e.value)
    from transformers import GPT2Config, GPT2LMHeadModel

    wide = HookedModel(GPT2LMHeadModel(GPT2Config(vocab_size=400, n_embd=32, n_layer=3, n_head=4, n_positions=128)),
                       g.tokenizer, name="narrow")  # fmt: skip
    with pytest.raises(ConfigError, match="d_model"):
        check_pair(tiny_model("gpt2"), wide)
    vocab = HookedModel(GPT2LMHeadModel(GPT2Config(vocab_size=401, n_embd=64, n_layer=3, n_head=4, n_positions=128)),
                        g.tokenizer, name="vocab")  # fmt: skip
    with pytest.raises(ConfigError, match="d_vocab"):
        check_pair(tiny_model("gpt2"), vocab)
    other_tok = copy.deepcopy(g.tokenizer)
    other_tok.add_tokens(["zzzq"])
    with pytest.raises(ConfigError, match="tokenizers"):
        check_pair(g, HookedModel(g.hf, other_tok, name="retok"))


def test_steering_with_the_planted_difference(gpt2, one_thread):
    from mechscope.interventions import Add

    tuned = planted(gpt2)
    res = diff_models(gpt2, tuned, seqs_of(gpt2, tuned), DiffConfig(seq_len=16), coefs=[0, 1, 2, 4], progress=False)
    shifts = [r["target_logprob_shift"] for r in res.steer]
    assert shifts[0] == 0 and monotone_prefix(shifts) >= 3 and shifts[-1] > 0.5  # the promoted tokens rise
    # a sweep row equals a hand-made Add at every position but BOS
    v = res.stats.mean_diff[1]
    prompt = "The capital of France"
    rows = steer_sweep(gpt2, v, "blocks.1.hook_resid_post", prompt, [2.0], ["Paris"])
    n = len(gpt2.to_tokens(prompt).input_ids[0])
    hand = gpt2.forward(prompt, interventions=[Add("blocks.1.hook_resid_post", vector=v, scale=2.0,
                                                   positions=list(range(1, n)))])[0, -1].softmax(-1)  # fmt: skip
    top = hand.topk(3)
    assert [t["prob"] for t in rows[0]["top"][:3]] == pytest.approx(top.values.tolist(), abs=1e-6)


def test_bad_values_are_refused(gpt2):
    with pytest.raises(ConfigError, match="finite"):
        steer_sweep(gpt2, torch.zeros(64), "blocks.1.hook_resid_post", "Hi", [float("nan")])
    with pytest.raises(ConfigError, match="NaN"):
        steer_sweep(gpt2, torch.full((64,), float("nan")), "blocks.1.hook_resid_post", "Hi", [1.0])
    with pytest.raises(ConfigError, match="out of range"):
        diff_activations(gpt2, gpt2, seqs_of(gpt2), DiffConfig(layers=(7,)), progress=False)
    with pytest.raises(ConfigError):
        DiffConfig(components=("mlp_in",))
    broken = planted(gpt2)
    with torch.no_grad():
        broken.hf.transformer.h[0].mlp.c_proj.bias[0] = float("nan")
    with pytest.raises(CacheError, match="NaN"):
        diff_activations(gpt2, broken, seqs_of(gpt2), DiffConfig(seq_len=8), progress=False)
