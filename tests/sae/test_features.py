"""SAE feature statistics equal a brute-force per-latent computation on a tiny store (density, histogram,
top contexts with per-token activations, the quantile sample, logits, decoder neighbours); the pass does
not depend on chunking or on the source (store or corpus); the cache; `sae top` equals encoding by hand;
bad latents, stores and positions are one-line errors."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.data.corpus import CorpusConfig
from mechscope.errors import ArtifactError, ConfigError, OutOfRangeError
from mechscope.sae import feature_stats
from mechscope.sae.artifact import build
from mechscope.sae.config import SAEConfig
from mechscope.sae.feature_config import FeaturesConfig
from mechscope.sae.feature_stats import sample_keys
from mechscope.sae.feature_weights import decoder_logits, similar_latents, top_latents
from mechscope.sae.features import features
from mechscope.sae.store import ActivationStore, HarvestConfig, harvest
from tests.tiny import save_tiny_corpus, tiny_model

HOOK = "blocks.1.hook_resid_post"
SEQ = 16


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return save_tiny_corpus(tmp_path_factory.mktemp("corpus"), 6)


def corpus_cfg(corpus) -> CorpusConfig:
    return CorpusConfig(sources=(corpus,), seq_len=SEQ)


@pytest.fixture(scope="module")
def store(model, corpus, tmp_path_factory):
    cfg = HarvestConfig(hooks=(HOOK, "blocks.0.hook_mlp_out"), tokens=40 * SEQ, corpus=corpus_cfg(corpus), shard_contexts=8)
    return harvest(model, cfg, tmp_path_factory.mktemp("s") / "store", progress=False)


def random_sae(model, arch="topk", width=64, seed=0, **kw):
    cfg = SAEConfig(arch=arch, d_in=model.cfg.d_model, width=width, k=4, **kw)
    sae = build(cfg, {"hook": HOOK, "target": HOOK, "fingerprint": model.fingerprint, "model": model.name})
    sae.init_weights(torch.Generator().manual_seed(seed))
    with torch.no_grad():  # spread the biases so latents differ in density
        sae.b_enc.copy_(0.3 * torch.randn(width, generator=torch.Generator().manual_seed(seed + 1)))
    return sae.eval()


def everything(store: ActivationStore, sae) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: all tokens [context, seq] and latent activations [context, pos, d_sae] of the store."""
    toks, acts = zip(*(store.shard(n, [HOOK]) for n in store.shard_names))
    with torch.no_grad():
        return torch.cat(toks), sae.encode(torch.cat([a[HOOK] for a in acts]).float())


CFG = dict(k=5, samples=7, hist_bins=7, hist_min=0.1, hist_max=0.45)  # a narrow range: both end bins clamp


@pytest.mark.parametrize("arch", ["topk", "jumprelu"])
def test_statistics_equal_brute_force(model, store, tmp_path, arch, one_thread):
    sae = random_sae(model, arch)
    stats = features(model, sae, None, FeaturesConfig(**CFG), store=store, cache_dir=tmp_path / "c")
    tokens, f = everything(store, sae)  # [40, 16], [40, 15, 64]
    n_ctx, n_pos, width = f.shape
    t = stats.tables
    assert stats.meta["tokens"] == n_ctx * n_pos and stats.meta["first_position"] == 1
    # density and mean activation
    fires = (f > 0).sum((0, 1))
    assert 0 < int((fires > 0).sum()) and torch.equal(stats.fires, fires)
    torch.testing.assert_close(stats.density, fires.double() / (n_ctx * n_pos))
    torch.testing.assert_close(t["sum"], f.sum((0, 1)).double(), rtol=1e-5, atol=1e-5)
    # histogram: numpy's, on log10 values clipped into the range
    edges = torch.linspace(CFG["hist_min"], CFG["hist_max"], CFG["hist_bins"] + 1, dtype=torch.float64).numpy()
    import numpy as np

    for u in range(width):
        v = f[..., u][f[..., u] > 0].double().log10().clamp(CFG["hist_min"], CFG["hist_max"]).numpy()
        assert t["hist"][u].tolist() == np.histogram(v, edges)[0].tolist(), u
    assert t["hist"][:, 0].sum() > 0 and t["hist"][:, -1].sum() > 0  # the clamped ends are exercised
    # top contexts: scores, the contexts really have them, their per-token acts and max positions
    score = f.max(1).values  # [context, latent]
    want, order = score.sort(dim=0, descending=True, stable=True)  # ties: the earlier context
    assert torch.equal(t["top.score"], want[:5]) and torch.equal(t["top.context"], order[:5])
    for u in range(width):
        for j in range(5):
            c = int(t["top.context"][j, u])
            torch.testing.assert_close(t["top.acts"][j, u], f[c, :, u])
            assert f[c, int(t["top.position"][j, u]), u] == score[c, u]
            assert torch.equal(stats.tokens[int(t["top.row"][j, u])], tokens[c])
    # the sample: the firing contexts with the smallest keys, each latent
    keys = sample_keys(0, n_ctx, width, 0)
    for u in range(width):
        firing = (score[:, u] > 0).nonzero().flatten()
        expect = firing[keys[firing, u].argsort()][:7].tolist()
        valid = t["sample.score"][:, u] > float("-inf")
        got = t["sample.context"][:, u][valid].tolist()
        assert got == expect, u
        for j in valid.nonzero().flatten().tolist():
            torch.testing.assert_close(t["sample.acts"][j, u], f[int(t["sample.context"][j, u]), :, u])


def test_latent_dict(model, store, tmp_path, one_thread):
    sae = random_sae(model)
    stats = features(model, sae, 3, FeaturesConfig(**CFG), store=store, cache_dir=tmp_path / "c")
    tokens, f = everything(store, sae)
    u = int(stats.fires.argmax())
    d = stats.latent(u, model, sae, bands=3, n_logits=6, n_similar=4)
    fires = int((f[..., u] > 0).sum())
    assert d["fires"] == fires and math.isclose(d["density"], fires / f[..., 0].numel())
    assert math.isclose(d["mean_activation"], float(f[..., u].sum()) / fires, rel_tol=1e-5)
    assert math.isclose(d["max_activation"], float(f[..., u].max()), rel_tol=1e-6)
    assert d["positions"] == "all but BOS" and sum(d["histogram"]["counts"]) == fires
    ex = d["top_examples"][0]
    assert ex["tokens"] == model.to_str_tokens(tokens[ex["context"], 1:].tolist()) and len(ex["acts"]) == SEQ - 1
    assert ex["acts"][ex["position"]] == pytest.approx(ex["max"], abs=1e-5) and ex["max"] == d["max_activation"]
    maxes = [e["max"] for b in d["quantiles"] for e in b["examples"]]
    assert maxes == sorted(maxes, reverse=True) and len(maxes) == d["samples"] == 7 and len(d["quantiles"]) == 3
    assert all(b["range"] == [b["examples"][-1]["max"], b["examples"][0]["max"]] for b in d["quantiles"])
    # logits: the decoder row through the model's own output embedding, no norm
    ref = sae.W_dec[u].detach() @ model.hf.get_output_embeddings().weight.detach().T
    top, bottom = ref.topk(6), ref.topk(6, largest=False)
    assert [x["id"] for x in d["top_logits"]] == top.indices.tolist()
    assert [x["id"] for x in d["bottom_logits"]] == bottom.indices.tolist()
    torch.testing.assert_close(torch.tensor([x["logit"] for x in d["top_logits"]]), top.values)
    assert d["top_logits"][0]["token"] == model.to_str_tokens([top.indices[0].item()])[0]
    # neighbours: plain cosine, itself excluded
    W = sae.W_dec.detach()
    cos = torch.stack([torch.nn.functional.cosine_similarity(W[u], W[v], dim=0) for v in range(W.shape[0])])
    cos[u] = -2
    assert [s["latent"] for s in d["similar"]] == cos.topk(4).indices.tolist()
    torch.testing.assert_close(torch.tensor([s["cosine"] for s in d["similar"]]), cos.topk(4).values)


def test_never_firing_latent(model, store, tmp_path):
    sae = random_sae(model)
    with torch.no_grad():
        sae.W_enc[:, 7] = 0
        sae.b_enc[7] = -100.0
    d = features(model, sae, 7, FeaturesConfig(**CFG), store=store, cache_dir=tmp_path / "c").latent(7, model, sae)
    assert d["fires"] == 0 and d["density"] == 0 and d["top_examples"] == [] and d["quantiles"] == []
    assert d["mean_activation"] == 0 and d["max_activation"] == 0


def test_chunking_and_source_do_not_matter(model, store, corpus, tmp_path, monkeypatch, one_thread):
    sae = random_sae(model)
    cfg = FeaturesConfig(**CFG, tokens=40 * SEQ, split="train", batch_contexts=6, corpus=corpus_cfg(corpus))
    whole = features(model, sae, None, cfg, store=store, cache=False)
    monkeypatch.setattr(feature_stats, "CHUNK_ELEMENTS", 15 * 64 * 3)  # 3 contexts per encoded chunk
    chunked = features(model, sae, None, cfg, store=store, cache=False)
    for k, v in whole.tables.items():
        assert torch.equal(v, chunked.tables[k]), k
    from_corpus = features(model, sae, None, cfg, cache=False)  # the same contexts, through the model
    assert torch.equal(from_corpus.tables["hist"], whole.tables["hist"])
    assert torch.equal(from_corpus.tables["sample.context"], whole.tables["sample.context"])
    torch.testing.assert_close(from_corpus.tables["top.score"], whole.tables["top.score"], atol=1e-4, rtol=0)
    assert from_corpus.meta["source"]["kind"] == "corpus" and whole.meta["source"]["kind"] == "store"


def test_cache(model, store, tmp_path, monkeypatch):
    monkeypatch.setenv("MECHSCOPE_HOME", str(tmp_path / "home"))
    sae = random_sae(model)
    first = features(model, sae, 0, FeaturesConfig(**CFG), store=store)
    again = features(model, sae, 5, FeaturesConfig(**CFG), store=store)
    assert not first.cached and again.cached
    assert first.latent(5, model) == {**again.latent(5, model), "cached": False, "seconds": first.latent(5, model)["seconds"]}
    assert len(list((tmp_path / "home" / "sae_features").glob("*/*/mechscope.json"))) == 1
    other = random_sae(model, seed=3)  # other weights: another cache folder
    assert not features(model, other, 0, FeaturesConfig(**CFG), store=store).cached
    more = features(model, sae, 0, FeaturesConfig(**{**CFG, "k": 6}), store=store)  # other settings: recomputed
    assert not more.cached and more.tables["top.score"].shape[0] == 6
    # an explicit folder holding another SAE's statistics is recomputed, not misread
    features(model, sae, 0, FeaturesConfig(**CFG), store=store, cache_dir=tmp_path / "mine")
    res = features(model, other, 0, FeaturesConfig(**CFG), store=store, cache_dir=tmp_path / "mine")
    assert not res.cached and res.meta["sae_digest"] != first.meta["sae_digest"]


def test_top_latents_equal_encoding_by_hand(model):
    sae = random_sae(model, "jumprelu")
    prompt = "The capital of France is Paris"
    res = top_latents(model, sae, prompt, position=3, k=6)
    _, cache = model.run_with_cache(prompt, names=[HOOK])
    with torch.no_grad():
        f = sae.encode(cache[HOOK][0, 3])
    assert res.active == int((f > 0).sum()) > 6 and res.tokens == model.to_str_tokens(prompt)
    assert res.latents.tolist() == f.topk(6).indices.tolist()
    torch.testing.assert_close(res.activations, f.topk(6).values)
    last = top_latents(model, sae, prompt, position=-1, k=1000)
    assert last.position == len(res.tokens) - 1 and len(last.latents) == last.active
    d = res.to_dict()
    assert set(d) >= {"tokens", "position", "latents"} and set(d["latents"][0]) == {"latent", "activation"}


def test_logits_need_a_residual_target(model):
    sae = build(SAEConfig(arch="topk", d_in=64, width=32, k=4, d_out=96, transcoder=True),
                {"hook": HOOK, "target": "blocks.2.mlp.hook_post"})  # fmt: skip
    assert decoder_logits(model, sae, torch.tensor([0])) is None
    vals, idx = similar_latents(sae, torch.tensor([0, 1]), 3)
    assert idx.shape == (2, 3) and (idx[0] != 0).all()


def test_errors(model, store, corpus, tmp_path):
    sae = random_sae(model)
    with pytest.raises(OutOfRangeError, match="latent 64 out of range: the SAE has 64 latents"):
        features(model, sae, 64, FeaturesConfig(**CFG), store=store, cache_dir=tmp_path / "c")
    other_hook = random_sae(model)
    other_hook.info.update(hook="blocks.2.hook_resid_post", target="blocks.2.hook_resid_post")
    with pytest.raises(ArtifactError, match="holds blocks.1.hook_resid_post, blocks.0.hook_mlp_out, not blocks.2"):
        features(model, other_hook, 0, FeaturesConfig(**CFG), store=store.path, cache_dir=tmp_path / "c")
    stranger = tiny_model("llama", seed=1)
    alien = random_sae(stranger)
    alien.info["fingerprint"] = stranger.fingerprint
    with pytest.raises(ArtifactError, match="another model"):
        features(stranger, alien, 0, FeaturesConfig(**CFG), store=store.path, cache_dir=tmp_path / "c")
    with pytest.raises(ArtifactError, match="another model"):
        features(stranger, alien, 0, FeaturesConfig(**CFG), store=store, cache_dir=tmp_path / "c")
    with pytest.raises(OutOfRangeError, match="position 9 out of range: the prompt has 6 tokens"):
        top_latents(model, sae, "The capital of France is", position=9)
    with pytest.raises(ConfigError, match="k must be a positive"):
        FeaturesConfig(k=0)
    stats = features(model, sae, 0, FeaturesConfig(**CFG), store=store, cache_dir=tmp_path / "c")
    with pytest.raises(OutOfRangeError, match="latent -1 out of range"):
        stats.latent(-1, model)


def test_more_rows_than_contexts(model, store, tmp_path):
    sae = random_sae(model)
    stats = features(model, sae, 0, FeaturesConfig(**{**CFG, "k": 45, "samples": 45}), store=store, cache=False)
    _, f = everything(store, sae)
    t = stats.tables
    assert (t["top.context"][40:] == -1).all() and (t["top.row"][40:] == -1).all()  # 40 contexts, 45 rows
    assert sorted(t["top.context"][:40, 0].tolist()) == list(range(40))
    u = int(stats.fires.argmax())
    d = stats.latent(u, model, sae)
    assert len(d["top_examples"]) == int((f[..., u].max(1).values > 0).sum()) == d["samples"] > 30



def test_shape_annotations_hold(model):
    import jaxtyping
    from jaxtyping import Float, Int

    sae = random_sae(model)

    @jaxtyping.jaxtyped(typechecker=None)
    def check():  # within one scope the named dims (n, d_sae, d_vocab) must agree across calls
        assert isinstance(sae.W_dec.detach(), Float[torch.Tensor, "d_sae d_model"])
        lat = torch.tensor([1, 2, 3])
        assert isinstance(lat, Int[torch.Tensor, " n"])
        assert isinstance(decoder_logits(model, sae, lat), Float[torch.Tensor, "n d_vocab"])
        vals, idx = similar_latents(sae, lat, 4)
        assert isinstance(vals, Float[torch.Tensor, "n k"]) and isinstance(idx, Int[torch.Tensor, "n k"])
        assert isinstance(sample_keys(0, 5, 64, 0), Float[torch.Tensor, "context d_sae"])
        assert isinstance(model.W_U, Float[torch.Tensor, "d_model d_vocab"])

    check()

@pytest.mark.gemma
def test_gemma_features_and_top(gemma, tmp_path):
    hook = "blocks.6.hook_resid_post"
    sae = build(SAEConfig(arch="topk", d_in=640, width=512, k=16),
                {"hook": hook, "target": hook, "fingerprint": gemma.fingerprint, "model": gemma.name})  # fmt: skip
    sae.init_weights(torch.Generator().manual_seed(0))
    cfg = FeaturesConfig(tokens=2048, k=4, samples=4)
    stats = features(gemma, sae, 0, cfg, cache_dir=tmp_path / "c")
    assert stats.meta["tokens"] == 16 * 127 and int(stats.fires.sum()) == 16 * 127 * 16  # k per token, BOS left out
    u = int(stats.fires.argmax())
    d = stats.latent(u, gemma, sae, n_logits=5)
    assert all("<bos>" not in ex["tokens"] for ex in d["top_examples"]) and len(d["top_examples"]) == 4
    ref = sae.W_dec[u].detach() @ gemma.hf.get_output_embeddings().weight.detach().float().T  # [262144]
    assert [x["id"] for x in d["top_logits"]] == ref.topk(5).indices.tolist()
    prompt = "The reliability of Wikipedia is very"
    res = top_latents(gemma, sae, prompt, k=16)
    _, cache = gemma.run_with_cache(prompt, names=[hook])
    with torch.no_grad():
        f = sae.encode(cache[hook][0, -1].float())
    assert res.tokens[-1] == " very" and res.latents.tolist() == f.topk(16).indices.tolist()
    torch.testing.assert_close(res.activations, f.topk(16).values, rtol=1e-4, atol=1e-3)
