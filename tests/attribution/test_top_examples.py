"""Running top-k equals a brute-force sort (scores, contexts, per-token activations); cached reads;
heads as units; bad hooks and units are one-line errors."""

from __future__ import annotations


import pytest
import torch

from mechscope.attribution.top_examples import (RunningTopK, TopExamplesConfig, brute_force, top_examples,
                                                unit_values)  # fmt: skip
from mechscope.data.corpus import CorpusConfig
from mechscope.errors import ConfigError, HookNameError, OutOfRangeError
from tests.tiny import save_tiny_corpus, tiny_model


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return save_tiny_corpus(tmp_path_factory.mktemp("corpus"), 6)


def config(corpus, **kw):
    return TopExamplesConfig(**{"tokens": 40 * 16, "k": 4, "batch_size": 7,
                                "corpus": CorpusConfig(sources=(corpus,), seq_len=16), **kw})  # fmt: skip


@pytest.mark.parametrize("hook", ["blocks.1.mlp.hook_post", "blocks.0.hook_resid_post", "blocks.2.attn.hook_z"])
def test_equals_brute_force(corpus, tmp_path, hook):
    model = tiny_model("llama")
    res = top_examples(model, hook, 0, config(corpus), cache_dir=tmp_path / "c")
    acts = unit_values(model.collect(res.contexts.long(), [hook])[hook], model.spec(hook))  # [context, pos, unit]
    assert res.contexts.shape[0] == 40 and res.n_units == acts.shape[-1]
    for side, largest in (("top", True), ("bottom", False)):
        table = getattr(res, side)
        score, ctx = brute_force(acts, 4, largest)
        torch.testing.assert_close(table["score"], score, atol=1e-5, rtol=0)
        # the kept contexts really have those scores (the repetitive corpus has ties, so ids may differ)
        full = acts[:, 1:].max(1).values if largest else acts[:, 1:].min(1).values
        torch.testing.assert_close(full.gather(0, table["context"]), score, atol=1e-5, rtol=0)
        assert all(len(set(col.tolist())) == 4 for col in table["context"].T)
        # carried per-token activations are the context's own
        units = torch.arange(res.n_units)
        want = torch.stack([acts[table["context"][j], :, units] for j in range(4)])  # [k, unit, pos]
        torch.testing.assert_close(table["acts"], want, atol=1e-5, rtol=0)
        pos = table["position"]
        assert (pos >= 1).all()
        torch.testing.assert_close(table["acts"].gather(2, pos.unsqueeze(-1)).squeeze(-1), table["score"], atol=1e-6, rtol=0)


def test_cache_makes_another_unit_instant(corpus, tmp_path):
    model = tiny_model("llama")
    first = top_examples(model, "blocks.1.mlp.hook_post", 3, config(corpus), cache_dir=tmp_path / "c")
    again = top_examples(model, "blocks.1.mlp.hook_post", 5, config(corpus), cache_dir=tmp_path / "c")
    assert not first.cached and again.cached
    a, b = first.unit(model, 5), again.unit(model, 5)
    assert [e["context"] for e in a["top"]] == [e["context"] for e in b["top"]]
    assert a["top"][0]["tokens"][0] == "<bos>" and len(a["top"][0]["activations"]) == 16
    other = tiny_model("llama", seed=1)  # another model refuses the cached scan
    with pytest.raises(Exception, match="fingerprint|another model|belongs"):
        top_examples(other, "blocks.1.mlp.hook_post", 3, config(corpus), cache_dir=tmp_path / "c")


def test_running_topk_small_batches():
    torch.manual_seed(0)
    acts = torch.randn(23, 9, 5)
    run = RunningTopK(6, largest=True)
    for s in range(0, 23, 4):
        run.update(acts[s : s + 4], s)
    score, ctx = brute_force(acts, 6, True)
    assert torch.equal(run.context, ctx) and torch.allclose(run.score, score)


def test_bad_inputs(corpus, tmp_path):
    model = tiny_model("llama")
    with pytest.raises(OutOfRangeError, match="unit 96 out of range"):
        top_examples(model, "blocks.1.mlp.hook_post", 96, config(corpus), cache_dir=tmp_path / "c")
    with pytest.raises(HookNameError, match="unknown hook name"):
        top_examples(model, "blocks.1.mlp.hook_postt", 0, config(corpus), cache_dir=tmp_path / "c")
    with pytest.raises(OutOfRangeError, match="layer 7"):
        top_examples(model, "blocks.7.mlp.hook_post", 0, config(corpus), cache_dir=tmp_path / "c")
    with pytest.raises(HookNameError, match="pattern"):
        top_examples(model, "blocks.1.attn.hook_pattern", 0, config(corpus), cache_dir=tmp_path / "c")
    with pytest.raises(ConfigError):
        TopExamplesConfig(k=0)
