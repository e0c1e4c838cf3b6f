"""``mechscope sae features`` and ``mechscope sae top`` on a tiny local model: JSON schemas, the PNG and
HTML dashboards, the default cache folder, and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.data.corpus import CorpusConfig
from mechscope.sae.artifact import build, save
from mechscope.sae.config import SAEConfig
from mechscope.sae.store import HarvestConfig, harvest
from tests.clirun import last_line, run_cli
from tests.tiny import save_tiny_corpus, save_tiny_dir

HOOK = "blocks.1.hook_resid_post"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import mechscope

    root = tmp_path_factory.mktemp("cli-features")
    corpus = CorpusConfig(sources=(save_tiny_corpus(root, 6),), seq_len=16)
    tiny_dir = save_tiny_dir(root / "model", "gemma3")
    model = mechscope.load(tiny_dir, device="cpu")
    store = root / "store"
    harvest(model, HarvestConfig(hooks=(HOOK,), tokens=24 * 16, corpus=corpus, shard_contexts=8), store, progress=False)
    other_hook = root / "store-l0"
    harvest(model, HarvestConfig(hooks=("blocks.0.hook_resid_post",), tokens=32, corpus=corpus), other_hook, progress=False)
    alien_model = mechscope.load(save_tiny_dir(root / "llama", "llama"), device="cpu")
    alien = root / "store-alien"
    harvest(alien_model, HarvestConfig(hooks=(HOOK,), tokens=32, corpus=corpus), alien, progress=False)
    sae = build(SAEConfig(arch="topk", d_in=model.cfg.d_model, width=64, k=4),
                {"hook": HOOK, "target": HOOK, "fingerprint": model.fingerprint, "model": model.name})  # fmt: skip
    sae.init_weights(torch.Generator().manual_seed(0))
    save(sae, root / "sae")
    return {"model": tiny_dir, "store": str(store), "sae": str(root / "sae"), "other_hook": str(other_hook),
            "alien": str(alien), "corpus": corpus.sources[0]}  # fmt: skip


def test_features_json_png_html(capsys, env, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("MECHSCOPE_HOME", str(tmp_path / "home"))
    png, page = tmp_path / "latent.png", tmp_path / "latent.html"
    args = ["sae", "features", env["sae"], "--latent", "5", "--store", env["store"], "--model", env["model"], "--k", "6"]
    code, out, _ = run_cli(capsys, *args, "--json", "--png", str(png), "--html", str(page))
    data = json.loads(out)
    assert code == 0 and png.stat().st_size > 5000 and "<svg" in page.read_text()
    assert data["latent"] == 5 and isinstance(data["density"], float) and 0 < data["density"] <= 1
    assert data["positions"] == "all but BOS" and data["tokens_scanned"] == 24 * 15 and not data["cached"]
    for key in ("top_logits", "bottom_logits"):
        assert len(data[key]) == 10 and all(set(x) == {"token", "id", "logit"} for x in data[key])
        assert all(isinstance(x["token"], str) and isinstance(x["logit"], float) for x in data[key])
    assert data["top_logits"][0]["logit"] >= data["top_logits"][-1]["logit"] > data["bottom_logits"][0]["logit"]
    assert 0 < len(data["top_examples"]) <= 6
    for ex in data["top_examples"]:
        assert len(ex["tokens"]) == len(ex["acts"]) == 15 and all(isinstance(t, str) for t in ex["tokens"])
        assert isinstance(ex["max"], float) and ex["max"] == pytest.approx(max(ex["acts"]), abs=1e-5)
    assert "<bos>" not in data["top_examples"][0]["tokens"]
    assert len(data["similar"]) == 10 and all(set(s) == {"latent", "cosine"} and s["latent"] != 5 for s in data["similar"])
    assert len(data["histogram"]["counts"]) == 80 and len(data["histogram"]["log10_edges"]) == 81
    assert sum(data["histogram"]["counts"]) == data["fires"]
    assert all(set(b) == {"band", "fraction", "range", "examples"} for b in data["quantiles"])
    assert data["source"]["kind"] == "store" and data["files"] == [str(png), str(page)]
    assert len(list((tmp_path / "home" / "sae_features").glob("*/*/mechscope.json"))) == 1
    code, out, _ = run_cli(capsys, *args[:4], "9", *args[5:])  # another latent: from the cache, human output
    assert code == 0 and "latent 9 of 64" in out and "top logits:" in out and "(cached," in out


def test_features_from_the_corpus(capsys, env, tmp_path, one_thread):
    code, out, _ = run_cli(capsys, "sae", "features", env["sae"], "--latent", "0", "--model", env["model"], "--corpus",
                           env["corpus"], "--seq-len", "16", "--tokens", "160", "--cache-dir", str(tmp_path / "c"),
                           "--json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["source"]["kind"] == "corpus" and data["tokens_scanned"] == 10 * 15


def test_top_json_and_text(capsys, env):
    code, out, _ = run_cli(capsys, "sae", "top", PROMPT, "--sae", env["sae"], "--model", env["model"], "--k", "3",
                           "--json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["tokens"][0] == "<bos>" and data["position"] == len(data["tokens"]) - 1
    assert len(data["latents"]) == 3 and all(isinstance(x["latent"], int) for x in data["latents"])
    acts = [x["activation"] for x in data["latents"]]
    assert acts == sorted(acts, reverse=True) and acts[-1] > 0 and len(data["latents"][0]["top_logits"]) == 5
    code, out, _ = run_cli(capsys, "sae", "top", PROMPT, "--sae", env["sae"], "--model", env["model"], "--position", "2")
    assert code == 0 and "position 2" in out and "top logits" in out


@pytest.mark.parametrize("argv, message", [
    (["features", "{sae}", "--latent", "64"], "latent 64 out of range: the SAE has 64 latents (0..63)"),
    (["features", "{sae}", "--latent", "-1"], "latent -1 out of range"),
    (["features", "{sae}", "--latent", "1", "--store", "{other_hook}"], "holds blocks.0.hook_resid_post, not blocks.1"),
    (["features", "{sae}", "--latent", "1", "--store", "{alien}"], "another model"),
    (["features", "{sae}", "--latent", "1", "--png", "x.txt"], "should end in .png"),
    (["features", "{sae}", "--latent", "1", "--k", "0"], "k must be a positive integer"),
    (["top", PROMPT, "--sae", "{sae}", "--position", "6"], "position 6 out of range: the prompt has 6 tokens"),
    (["top", PROMPT, "--sae", "{sae}", "--position", "-7"], "position -7 out of range"),
    (["top", "", "--sae", "{sae}"], "prompt"),
])  # fmt: skip
def test_bad_input_is_one_line(capsys, env, argv, message):
    code, out, err = run_cli(capsys, "sae", *[a.format(**env) for a in argv], "--model", env["model"])
    assert code == 2 and message in last_line(err) and last_line(err).startswith("mechscope: error:")
