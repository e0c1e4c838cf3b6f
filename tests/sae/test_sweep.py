"""Width sweep: decoder-cosine matching equals a brute-force computation on the full cosine matrix
(dead latents left out, any chunking); a tiny sweep trains, evaluates, matches and writes its folder end
to end, from the model and from a store, through the library and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.data.corpus import CorpusConfig
from mechscope.errors import ConfigError, OutputPathError
from mechscope.sae.config import SAETrainConfig
from mechscope.sae.evaluate import SAEEvalConfig
from mechscope.sae.sweep import analyse, match_latents, sweep, sweep_configs
from tests.clirun import last_line, run_cli
from tests.tiny import save_tiny_corpus, save_tiny_dir, tiny_model

HOOK = "blocks.1.hook_resid_post"


def brute_match(small, large, threshold, sa, la):
    a = torch.nn.functional.normalize(small.double(), dim=1)
    b = torch.nn.functional.normalize(large.double(), dim=1)
    c = a @ b.T
    c[~sa] = -2
    c[:, ~la] = -2
    max_cos, best = c.max(1)
    pcos, parent = c.max(0)
    children = torch.zeros(small.shape[0], dtype=torch.long)
    for j in range(large.shape[0]):
        if la[j] and pcos[j] > threshold:
            children[parent[j]] += 1
    return max_cos, best, parent, pcos, children


@pytest.mark.parametrize("chunk", [1 << 24, 50, 7])
def test_matching_equals_brute_force(chunk):
    g = torch.Generator().manual_seed(0)
    small = torch.randn(20, 8, generator=g)
    # children: noisy copies of some parents (two or three of a few), plus random directions
    large = torch.cat([small[[0, 0, 1, 2, 2, 2, 5]] + 0.3 * torch.randn(7, 8, generator=g), torch.randn(33, 8, generator=g)])
    large = large[torch.randperm(40, generator=g)]
    sa = torch.ones(20, dtype=torch.bool)
    sa[[3, 9]] = False
    la = torch.rand(40, generator=g) > 0.1
    m = match_latents(small, large, 0.6, sa, la, chunk=chunk)
    max_cos, best, parent, pcos, children = brute_match(small, large, 0.6, sa, la)
    torch.testing.assert_close(m.max_cos[sa].double(), max_cos[sa], atol=1e-6, rtol=0)
    assert m.max_cos[~sa].isnan().all() and (m.best[~sa] == -1).all()
    assert torch.equal(m.best[sa], best[sa])
    torch.testing.assert_close(m.parent_cos[la].double(), pcos[la], atol=1e-6, rtol=0)
    assert torch.equal(m.parent[la], parent[la]) and (m.parent[~la] == -1).all()
    assert torch.equal(m.children, children)
    d = m.to_dict()
    assert d["split"] == int((children[sa] >= 2).sum()) >= 2  # parents 0 and 2 split (unless the noise hid one)
    assert d["matched"] == int((max_cos[sa] > 0.6).sum()) and d["parents_alive"] == 18
    assert d["new"] == int((la & ~(pcos > 0.6)).sum()) and d["children_alive"] == int(la.sum())
    assert sum(d["children_per_parent"].values()) == 18 and sum(d["max_cos_histogram"]["counts"]) == 18
    assert d["max_cos_quantiles"]["0.5"] == pytest.approx(float(max_cos[sa].float().quantile(0.5)), abs=1e-6)
    top = d["largest_splits"][0]
    assert len(top["children"]) == max(children) and all(c > 0.6 for c in top["cosines"])
    json.dumps(d, allow_nan=False)


def test_matching_identical_decoders():
    w = torch.linalg.qr(torch.randn(16, 8)).Q.T * 3  # 8 orthogonal rows (any norm: cosines normalise)
    m = match_latents(w, torch.cat([w, -w]), 0.6)
    torch.testing.assert_close(m.max_cos, torch.ones(8))
    assert torch.equal(m.best, torch.arange(8)) and torch.equal(m.parent[:8], torch.arange(8))
    d = m.to_dict()
    assert d["split"] == 0 and d["matched"] == 8 and d["new"] == 8 and d["children_per_parent"]["1"] == 8


def test_configs_match_l0_and_refuse_bad_sweeps():
    cfgs = sweep_configs([64, 16, 32], 8, 8, k=4)
    assert [c.width for c in cfgs] == [16, 32, 64] and {c.k for c in cfgs} == {4}
    with pytest.raises(ConfigError, match="matches L0 through k"):
        sweep_configs([16, 32], 8, 8, arch="relu")
    with pytest.raises(ConfigError, match="at least two different widths"):
        sweep_configs([16, 16], 8, 8)
    with pytest.raises(ConfigError, match="cannot exceed the width"):
        sweep_configs([2, 16], 8, 8, k=4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return save_tiny_corpus(tmp_path_factory.mktemp("corpus"), 20)


def test_tiny_sweep_end_to_end(corpus, tmp_path, one_thread):
    from mechscope.sae.artifact import load
    from mechscope.sae.train import ModelSource

    model = tiny_model("llama")
    cc = CorpusConfig(sources=(corpus,), seq_len=16)
    cfgs = sweep_configs([16, 64], 64, 64, k=4)
    tc = SAETrainConfig(tokens=1500, batch_tokens=150, log_every=2, warmup_steps=2, checkpoint_every=0)
    ec = SAEEvalConfig(tokens=16 * 8, corpus=cc)
    res = sweep(model, ModelSource(model, HOOK, corpus=cc), cfgs, tc, ec, tmp_path / "sw", png=True, progress=False)
    d = res.to_dict()
    assert d["widths"] == [16, 64] and len(d["matches"]) == 1 and d["positions"] == "all but BOS"
    for row in d["rows"]:
        assert row["l0"] <= 4 and 0 < row["fvu"] < 1.5 and row["train"]["tokens"] == 1500
    m = d["matches"][0]
    assert (m["small_width"], m["large_width"]) == (16, 64) and 0 <= m["split"] <= m["parents_alive"]
    assert "16 -> 64" in res.table() and "split" in res.table()
    out = tmp_path / "sw"
    assert json.loads((out / "sweep.json").read_text())["widths"] == [16, 64]
    assert (out / "sweep.png").stat().st_size > 1000
    marker = json.loads((out / "mechscope.json").read_text())
    assert marker["kind"] == "sae-sweep" and "topk-64-k4/sae.safetensors" in marker["files"]
    # the saved SAEs are the evaluated ones: re-analysing them gives the same numbers
    saes = [load(out / c.label(), model) for c in cfgs]
    again = analyse(model, saes, ec, progress=False).to_dict()
    for a, b in zip(again["rows"], d["rows"]):
        assert a["fvu"] == pytest.approx(b["fvu"], rel=1e-5) and a["ce_spliced"] == pytest.approx(b["ce_spliced"], rel=1e-5)
    assert again["matches"][0]["split"] == m["split"]
    # the same sweep may write its folder again; a user's folder is refused
    sweep(model, ModelSource(model, HOOK, corpus=cc), cfgs, tc, ec, out, progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="did not create"):
        sweep(model, ModelSource(model, HOOK, corpus=cc), cfgs, tc, ec, tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_dir(tmp_path_factory.mktemp("tiny-llama"), "llama")


def test_cli_from_store(capsys, tiny_dir, corpus, tmp_path, one_thread):
    import mechscope
    from mechscope.sae.store import HarvestConfig, harvest

    model = mechscope.load(tiny_dir, device="cpu")
    hc = HarvestConfig(hooks=(HOOK,), tokens=16 * 60, corpus=CorpusConfig(sources=(corpus,), seq_len=16), shard_contexts=32)
    harvest(model, hc, tmp_path / "store", progress=False)
    argv = ["sae", "sweep", "--store", str(tmp_path / "store"), "--widths", "16,32", "--k", "4", "--tokens", "1200",
            "--batch-tokens", "150", "--eval-tokens", "128", "--out", str(tmp_path / "sw"), "--model", tiny_dir]
    code, out, _ = run_cli(capsys, *argv, "--json", "--png")
    data = json.loads(out)
    assert code == 0 and data["widths"] == [16, 32] and data["hook"] == HOOK
    assert {"l0", "fvu", "dead_fraction", "loss_recovered"} <= set(data["rows"][0])
    assert data["files"][1].endswith("sweep.png") and (tmp_path / "sw" / "sweep.png").stat().st_size > 1000
    assert isinstance(data["matches"][0]["split"], int)
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "width" in out and "16 -> 32" in out
    code, _, err = run_cli(capsys, *argv, "--widths", "16")
    assert code == 2 and "at least two different widths" in last_line(err)
    code, _, err = run_cli(capsys, *argv, "--k", "20")
    assert code == 2 and "k (20) cannot exceed the width (16)" in last_line(err)
    code, _, err = run_cli(capsys, *argv[:-4], "--out", str(tmp_path / "x"), "--model", tiny_dir, "--hook", "blocks.9.hook_resid_post")
    assert code == 2 and "out of range" in last_line(err)
