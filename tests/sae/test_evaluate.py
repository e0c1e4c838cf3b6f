"""SAE evaluation: every metric equals a brute-force computation on the whole batch; a perfect SAE
recovers all the loss; zero ablation equals a manual hook; transcoders read one hook and write
another; an SAE of another model is a one-line error; the CLI's JSON schema and picture."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.data.corpus import CorpusConfig
from mechscope.errors import ArtifactError, ConfigError
from mechscope.sae.artifact import build, save
from mechscope.sae.config import SAEConfig
from mechscope.sae.evaluate import RunningStats, SAEEvalConfig, evaluate, evaluate_many, heldout_contexts
from tests.clirun import last_line, run_cli
from tests.tiny import save_tiny_corpus, save_tiny_dir, tiny_model

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return save_tiny_corpus(tmp_path_factory.mktemp("corpus"), 20)


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def eval_cfg(corpus, **kw):
    return SAEEvalConfig(**{"tokens": 16 * 10, "batch_contexts": 3, "corpus": CorpusConfig(sources=(corpus,), seq_len=16),
                            **kw})  # fmt: skip


def random_sae(model, arch="topk", width=48, hook=HOOK, target=None, seed=0, **kw):
    target = target or hook
    d_in, d_out = model.cfg.d_model, model.cfg.d_model
    cfg = SAEConfig(arch=arch, d_in=d_in, width=width, k=4, transcoder=target != hook,
                    d_out=d_out if target != hook else None, **kw)  # fmt: skip
    sae = build(cfg, {"model": model.name, "fingerprint": model.fingerprint, "hook": hook, "target": target})
    g = torch.Generator().manual_seed(seed)
    sae.init_weights(g)
    with torch.no_grad():
        sae.b_enc.copy_(0.3 * torch.randn(width, generator=g) - 0.2)
        sae.b_dec.copy_(0.1 * torch.randn(d_out, generator=g))
        sae.W_dec.mul_(2.0)
    return sae.eval()


def perfect_sae(model, hook=HOOK):
    """ReLU SAE with W_enc = [I, -I], W_dec = [I; -I]: relu(x) - relu(-x) = x exactly."""
    d = model.cfg.d_model
    sae = build(SAEConfig(arch="relu", d_in=d, width=2 * d),
                {"model": model.name, "fingerprint": model.fingerprint, "hook": hook, "target": hook})
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
    return sae.eval()


def brute_ce(model, ids, hook=None, replace=None):
    """Mean next-token CE of logits at positions 1..-2, with ``hook``'s positions 1: set to ``replace``."""

    def fn(act, spec):
        act = act.clone()
        act[:, 1:] = replace
        return act

    logits = model.forward(ids, prepend_bos=False, fwd_hooks=[(hook, fn)] if hook else [])
    logp = logits[:, 1:-1].double().log_softmax(-1)
    return float(-logp.gather(-1, ids[:, 2:, None].long()).mean())


@torch.no_grad()
def brute_force(model, sae, ids, dense=0.1):
    cache = model.run_with_cache(ids, [sae.hook, sae.target], prepend_bos=False)[1]
    x, y = cache[sae.hook][:, 1:], cache[sae.target][:, 1:]
    f = sae.encode(x)
    recon = sae.decode(f, x)
    yf = y.reshape(-1, y.shape[-1]).double()
    fvu = float((yf - recon.reshape(yf.shape).double()).pow(2).sum() / (yf - yf.mean(0)).pow(2).sum())
    active = (f != 0).reshape(-1, f.shape[-1])
    density = active.double().mean(0)
    clean, spliced, zero = (brute_ce(model, ids), brute_ce(model, ids, sae.target, recon),
                            brute_ce(model, ids, sae.target, 0.0))  # fmt: skip
    return {"l0": float(active.double().sum(1).mean()), "fvu": fvu, "dead_fraction": float((density == 0).double().mean()),
            "dense_fraction": float((density > dense).double().mean()), "ce_clean": clean, "ce_spliced": spliced,
            "ce_zero": zero, "loss_recovered": (zero - spliced) / (zero - clean), "density": density}  # fmt: skip


@pytest.mark.parametrize("arch", ["topk", "relu", "jumprelu", "batchtopk"])
def test_metrics_equal_brute_force(model, corpus, arch, one_thread):
    cfg = eval_cfg(corpus)
    ids = heldout_contexts(model, cfg, progress=False)
    assert ids.shape == (10, 16) and (ids[:, 0] == model.tokenizer.bos_token_id).all()
    sae = random_sae(model, arch)
    got = evaluate(model, sae, cfg, progress=False)
    want = brute_force(model, sae, ids)
    for key in ("l0", "fvu", "dead_fraction", "dense_fraction", "ce_clean", "ce_spliced", "ce_zero", "loss_recovered"):
        assert getattr(got, key) == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
    torch.testing.assert_close(got.density.double(), want["density"], atol=1e-7, rtol=0)
    assert got.tokens == 10 * 15 and got.predicted == 10 * 14 and got.contexts == 10
    assert 0 < got.l0 < sae.cfg.width and got.ce_spliced != got.ce_clean
    d = got.to_dict()
    assert d["positions"] == "all but BOS" and d["width"] == 48
    assert sum(d["density_histogram"]["counts"]) + d["density_histogram"]["dead"] == 48
    json.dumps(d, allow_nan=False)


def test_transcoder_reads_hook_writes_target(model, corpus, one_thread):
    cfg = eval_cfg(corpus)
    ids = heldout_contexts(model, cfg, progress=False)
    tc = random_sae(model, "topk", hook="blocks.0.ln2.hook_normalized", target="blocks.0.hook_mlp_out")
    got = evaluate(model, tc, cfg, progress=False)
    want = brute_force(model, tc, ids)
    for key in ("l0", "fvu", "ce_clean", "ce_spliced", "ce_zero"):
        assert getattr(got, key) == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
    assert got.target == "blocks.0.hook_mlp_out" and got.ce_zero != got.ce_clean


def test_perfect_sae_recovers_all_loss(model, corpus, one_thread):
    got = evaluate(model, perfect_sae(model), eval_cfg(corpus), progress=False)
    assert got.fvu < 1e-10 and got.ce_spliced == pytest.approx(got.ce_clean, abs=1e-5)
    assert got.loss_recovered == pytest.approx(1.0, abs=1e-4) and got.ce_zero > got.ce_clean
    assert got.l0 == pytest.approx(model.cfg.d_model, abs=1)  # every coordinate nonzero: one of its pair fires


def test_many_equals_one_by_one(model, corpus, one_thread):
    cfg = eval_cfg(corpus)
    a, b = random_sae(model, seed=1), random_sae(model, "relu", width=32, hook="blocks.0.hook_resid_post", seed=2)
    both = evaluate_many(model, [a, b], cfg, progress=False)
    for one, sae in zip(both, (a, b)):
        alone = evaluate(model, sae, cfg, progress=False)
        assert one.to_dict() | {"seconds": 0} == alone.to_dict() | {"seconds": 0}


def test_running_fvu_survives_a_large_mean():
    g = torch.Generator().manual_seed(0)
    ys = [1e4 + torch.randn(50, 8, generator=g) for _ in range(4)]
    rs = [y + 0.1 * torch.randn(50, 8, generator=g) for y in ys]
    st = RunningStats(3, 8)
    for y, r in zip(ys, rs):
        st.update(torch.zeros(50, 3), y, r)
    y, r = torch.cat(ys).double(), torch.cat(rs).double()
    want = float((y - r).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    assert st.fvu == pytest.approx(want, rel=1e-9) and st.l0 == 0


def test_refuses_other_model_and_bad_hooks(model, corpus):
    other = tiny_model("llama", seed=1)
    with pytest.raises(ArtifactError, match="another model"):
        evaluate(other, random_sae(model), eval_cfg(corpus), progress=False)
    backwards = random_sae(model, hook="blocks.1.hook_resid_post", target="blocks.0.hook_resid_post")
    with pytest.raises(ConfigError, match="fires after its target"):
        evaluate(model, backwards, eval_cfg(corpus), progress=False)
    with pytest.raises(ConfigError, match="tokens must be a positive"):
        SAEEvalConfig(tokens=0)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_dir(tmp_path_factory.mktemp("tiny-llama"), "llama")


def test_cli_json_png_and_errors(capsys, tiny_dir, corpus, tmp_path, one_thread):
    import mechscope

    m = mechscope.load(tiny_dir, device="cpu")
    sae_dir = save(random_sae(m), tmp_path / "sae")
    png = tmp_path / "eval.png"
    args = ["sae", "eval", str(sae_dir), "--model", tiny_dir, "--corpus", corpus, "--seq-len", "16", "--tokens", "64"]
    code, out, _ = run_cli(capsys, *args, "--json", "--png", str(png))
    data = json.loads(out)
    assert code == 0 and png.stat().st_size > 1000
    for key in ("l0", "fvu", "dead_fraction", "ce_clean", "ce_spliced", "ce_zero", "loss_recovered"):
        assert isinstance(data[key], float), key
    assert data["tokens"] == 4 * 15 and data["positions"] == "all but BOS" and data["files"] == [str(png)]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "loss recovered" in out
    other = save(random_sae(tiny_model("llama", seed=3)), tmp_path / "other")
    code, _, err = run_cli(capsys, "sae", "eval", str(other), "--model", tiny_dir, "--corpus", corpus, "--json")
    assert code == 2 and "another model" in last_line(err) and last_line(err).startswith("mechscope: error:")
    code, _, err = run_cli(capsys, *args, "--png", str(tmp_path / "x.txt"))
    assert code == 2 and "should end in .png" in last_line(err)


@pytest.mark.gemma
def test_gemma_perfect_and_zero(gemma):
    """On Gemma 3 270M's built-in held-out text: a perfect SAE recovers all the loss, and zero-ablating
    the layer-6 residual stream is far worse than clean (numbers documented in docs/sae-eval.md)."""
    hook = "blocks.6.hook_resid_post"
    got = evaluate(gemma, perfect_sae(gemma, hook), SAEEvalConfig(tokens=512), progress=False)
    assert got.tokens == 4 * 127 and got.predicted == 4 * 126
    assert got.fvu < 1e-10 and got.ce_spliced == pytest.approx(got.ce_clean, abs=1e-4)
    assert 2.0 < got.ce_clean < 5.0 and got.ce_zero > got.ce_clean + 5 and got.loss_recovered == pytest.approx(1, abs=1e-4)
