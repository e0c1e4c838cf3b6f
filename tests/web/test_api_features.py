"""The Neurons & features page's routes answer the library's to_dict(): the SAE features pass (a job, then
the cached dashboard), the top-examples pass for neurons, per-token activations on typed text; paths
outside the runs roots and bad input are one-line 4xx."""

from __future__ import annotations

import pytest

from mechscope.io import finite_json
from tests.web.features_fixtures import SEQ_LEN, build_runs

VOLATILE = ("seconds", "cached")


def same(a: dict, b: dict) -> bool:
    """Equal but for timing and cache flags, floats to 1e-5 relative (a request runs on another thread,
    whose BLAS may sum in another order)."""
    strip = lambda d: {k: v for k, v in d.items() if k not in VOLATILE}  # noqa: E731
    return close(strip(a), strip(b))


def close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return a == pytest.approx(b, rel=1e-5, abs=1e-5)
    return a == b


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MECHSCOPE_HOME", str(tmp_path_factory.mktemp("home")))
        yield


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, tiny_gemma, home):
    root = tmp_path_factory.mktemp("runs")
    (root / "grok-1").mkdir()
    build_runs(root, tiny_gemma)
    return root


@pytest.fixture(scope="module")
def paths(runs_root):
    return {"sae": str(runs_root / "sae"), "corpus": str(runs_root / "text.jsonl")}


def source(paths, tokens=160):
    return {"corpus": [paths["corpus"]], "seq_len": SEQ_LEN, "tokens": tokens}


def features_cfg(paths, tokens=160):
    from mechscope.data.corpus import CorpusConfig
    from mechscope.sae.feature_config import FeaturesConfig

    return FeaturesConfig(tokens=tokens, corpus=CorpusConfig(sources=(paths["corpus"],), seq_len=SEQ_LEN))


def test_feature_scan_job_then_dashboard_equal_library(client, app, tiny_gemma, paths, one_thread):
    from mechscope.sae.artifact import load
    from mechscope.sae.features import features

    query = {"sae": "sae", "corpus": paths["corpus"], "seq_len": SEQ_LEN, "tokens": 160}
    r = client.get("/api/features/3", params=query)
    assert r.status_code == 409 and "not been scanned" in r.json()["error"] and "\n" not in r.json()["error"]

    job = client.post("/api/features/scan", json={"sae": "sae", **source(paths)}).json()
    assert job["kind"] == "sae-features" and job["state"] in ("queued", "running", "done")
    done = app.state.workbench.jobs.wait(job["id"], 30)
    assert done["state"] == "done", done["error"]
    assert done["progress"]["message"] == "scanning" and done["progress"]["done"] == done["progress"]["total"] == 10 * 15

    sae = load(paths["sae"], tiny_gemma)
    stats = features(tiny_gemma, sae, None, features_cfg(paths))  # the web's pass is on disk: read back
    assert stats.cached and not done["result"]["cached"]
    assert same(done["result"], finite_json(stats.to_dict()))

    got = client.get("/api/features/3", params=query).json()
    want = finite_json(stats.latent(3, tiny_gemma, sae))
    assert same(got, want) and got["cached"]
    assert got["latent"] == 3 and sum(got["histogram"]["counts"]) == got["fires"]
    assert len(got["similar"]) == 10 and len(got["top_logits"]) == 10
    assert same(client.get("/api/features/5", params={**query, "logits": 3, "similar": 4}).json(),
                finite_json(stats.latent(5, tiny_gemma, sae, n_logits=3, n_similar=4)))  # fmt: skip


def test_feature_scan_cancel_writes_no_cache(client, app, paths, tiny_gemma):
    from mechscope.sae.artifact import load
    from mechscope.sae.features import cache_key, default_cache_dir, sae_digest, source_info

    import threading

    wb = app.state.workbench
    release = threading.Event()
    gate = wb.jobs.submit("gate", lambda job: release.wait(10))  # the scan queues behind it
    job = client.post("/api/features/scan", json={"sae": "sae", **source(paths, tokens=2048)}).json()
    with wb.lock:  # the scan starts and waits for the model: cancel it there, it stops at its first chunk
        release.set()
        assert wb.jobs.wait(gate.id)["state"] == "done"
        assert _until(lambda: client.get(f"/api/jobs/{job['id']}").json()["state"] == "running")
        assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
    assert wb.jobs.wait(job["id"], 30)["state"] == "cancelled"
    cfg = features_cfg(paths, 2048)
    sae = load(paths["sae"], tiny_gemma)
    assert not default_cache_dir(sae_digest(sae), cache_key(cfg, source_info(cfg))).exists()


def test_neuron_scan_job_then_unit_equal_library(client, app, tiny_gemma, paths, one_thread):
    from mechscope.attribution.config import TopExamplesConfig
    from mechscope.attribution.top_examples import top_examples
    from mechscope.data.corpus import CorpusConfig

    hook = "blocks.1.mlp.hook_post"
    query = {"hook": hook, "corpus": paths["corpus"], "seq_len": SEQ_LEN, "tokens": 160, "k": 4}
    assert client.get("/api/neurons/7", params=query).status_code == 409
    job = client.post("/api/neurons/scan", json={"hook": hook, "k": 4, **source(paths)}).json()
    done = app.state.workbench.jobs.wait(job["id"], 30)
    assert done["state"] == "done", done["error"]
    assert done["result"]["n_units"] == tiny_gemma.cfg.d_mlp and done["result"]["hook"] == hook
    got = client.get("/api/neurons/7", params=query).json()
    cfg = TopExamplesConfig(tokens=160, k=4, corpus=CorpusConfig(sources=(paths["corpus"],), seq_len=SEQ_LEN))
    want = finite_json(top_examples(tiny_gemma, hook, 7, cfg).unit(tiny_gemma, 7))
    assert same(got, want) and len(got["top"]) == 4
    assert got["top"][0]["activation"] == pytest.approx(max(got["top"][0]["activations"][1:]), abs=1e-5)
    r = client.get(f"/api/neurons/{tiny_gemma.cfg.d_mlp}", params=query)
    assert r.status_code == 422 and "out of range" in r.json()["error"]


def test_activations_equal_library(client, tiny_gemma, paths):
    from mechscope.sae.artifact import load
    from mechscope.sae.feature_text import latent_text_activations, unit_text_activations

    text = "The capital of France is Paris"
    got = client.post("/api/activations", json={"text": text, "sae": "sae", "latent": 2}).json()
    want = latent_text_activations(tiny_gemma, load(paths["sae"], tiny_gemma), 2, text).to_dict()
    assert same(got, finite_json(want)) and got["tokens"][0] == "<bos>" and len(got["activations"]) == len(got["tokens"])
    got = client.post("/api/activations", json={"text": text, "hook": "blocks.0.mlp.hook_post", "unit": 5}).json()
    want = unit_text_activations(tiny_gemma, "blocks.0.mlp.hook_post", 5, text)
    assert same(got, finite_json(want.to_dict()))
    acts = tiny_gemma.collect(text, ["blocks.0.mlp.hook_post"])["blocks.0.mlp.hook_post"][0, :, 5]
    assert got["activations"] == pytest.approx(acts.tolist(), abs=1e-4)  # the hook's own numbers
    assert got["max_position"] == int(acts[1:].argmax()) + 1


def test_paths_outside_roots_are_refused(client, tmp_path):
    outside = tmp_path / "sae"
    outside.mkdir()
    for path in ("../sae", str(outside), "/etc"):
        for r in (client.post("/api/features/scan", json={"sae": path}),
                  client.get("/api/features/0", params={"sae": path}),
                  client.post("/api/activations", json={"text": "hi", "sae": path, "latent": 0}),
                  client.post("/api/features/scan", json={"sae": "sae", "corpus": [path]})):  # fmt: skip
            assert r.status_code == 403, r.text
            assert "outside the workbench's --runs folders" in r.json()["error"] and "\n" not in r.json()["error"]


def test_bad_input_is_one_line_4xx(client, tiny_gemma):
    cases = [
        (client.get("/api/features/32", params={"sae": "sae"}), 422, "out of range"),
        (client.get("/api/features/0", params={"sae": "grok-1"}), 404, "holds no SAE"),
        (client.get("/api/features/0", params={"sae": "sae", "bands": 0}), 422, "bands"),
        (client.post("/api/features/scan", json={"sae": "sae", "tokens": 1}), 422, "tokens"),
        (client.post("/api/features/scan", json={"sae": "sae", "colour": "red"}), 422, "colour"),
        (client.post("/api/neurons/scan", json={"hook": "blocks.0.attn.hook_pattern"}), 422, "attention pattern"),
        (client.post("/api/neurons/scan", json={"hook": "blocks.9.mlp.hook_post"}), 422, "out of range"),
        (client.post("/api/activations", json={"text": "hi"}), 422, "either sae and latent"),
        (client.post("/api/activations", json={"text": "hi", "sae": "sae", "latent": 1, "hook": "x", "unit": 1}), 422, "either"),
        (client.post("/api/activations", json={"text": "hi", "hook": "blocks.0.mlp.hook_post", "unit": 10**6}), 422, "out of range"),
        (client.post("/api/activations", json={"text": "", "hook": "blocks.0.mlp.hook_post", "unit": 1}), 422, "empty"),
        (client.post("/api/activations", content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON"),
    ]  # fmt: skip
    for r, code, words in cases:
        assert r.status_code == code, r.text
        err = r.json()["error"]
        assert words in err and "\n" not in err, err


def _until(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False
