"""One model lock: concurrent requests are all answered, each identical to its sequential answer, and no
hook survives a request that failed inside the forward (an error of mechscope's or an unexpected one)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

PROMPTS = [f"The capital of France is Paris {'and ' * (i % 5)}the" for i in range(20)]


def n_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


def test_twenty_concurrent_lens_requests(live):
    with httpx.Client(base_url=live.url, timeout=60) as c:
        sequential = [c.post("/api/lens", json={"prompt": p, "sublayers": i % 2 == 1}).json() for i, p in enumerate(PROMPTS)]

    def one(i):
        with httpx.Client(base_url=live.url, timeout=60) as c:
            r = c.post("/api/lens", json={"prompt": PROMPTS[i], "sublayers": i % 2 == 1})
            return r.status_code, r.json()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))
    assert [code for code, _ in answers] == [200] * 20
    assert [a for _, a in answers] == sequential


def test_no_hook_leaks_after_failures(app, tiny_gemma, monkeypatch):
    from fastapi.testclient import TestClient

    client = TestClient(app, raise_server_exceptions=False)  # as a real server: the 500 answer, not the raise
    before = n_hooks(tiny_gemma)
    # resample ablation without a source on one prompt fails inside the forward, with hooks attached
    r = client.post("/api/run", json={"prompt": "The capital", "interventions": {"kind": "resample", "hook": "blocks.1.hook_resid_post"}})
    assert r.status_code == 422 and "batch of at least 2" in r.json()["error"]
    assert n_hooks(tiny_gemma) == before
    # an unexpected exception inside a hook: 500 with one line, hooks gone, server still serving
    from mechscope.model.interventions import Scale

    def boom(self, act, spec, values):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(Scale, "edit", boom)
    r = client.post("/api/run", json={"prompt": "The capital", "interventions": {"kind": "scale", "hook": "blocks.0.hook_mlp_out", "factor": 2}})
    assert r.status_code == 500 and r.json() == {"error": "internal error: RuntimeError: boom"}
    assert n_hooks(tiny_gemma) == before
    assert not tiny_gemma.hf.model.layers[0].mlp._forward_hooks
    assert client.post("/api/lens", json={"prompt": "The capital"}).status_code == 200
    assert not app.state.workbench.lock.locked()
