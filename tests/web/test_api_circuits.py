"""The Circuits page's routes answer exactly the attribution library's to_dict()s (patching and tracing as
jobs), and a clicked cell's top-10 belongs to the same patch as the heatmap's number."""

from __future__ import annotations

import pytest

from mechscope.io import finite_json

CLEAN, CORRUPT = "The capital of France is", "The capital of Wikipedia is"
PATCH = {"clean": CLEAN, "corrupt": CORRUPT, "answer": " Paris", "wrong": " reliability"}
FACT = {"prompt": "The capital of France is", "subject": "France", "answer": " Paris", "samples": 3, "window": 1}


def _no_seconds(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "seconds"}


def _job(client, path, body) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    snap = client.app.state.workbench.jobs.wait(r.json()["id"], timeout=60)
    assert snap["state"] == "done", snap
    assert snap["progress"]["done"] == snap["progress"]["total"] > 0
    return snap["result"]


def test_patch_job_equals_library(client, tiny_gemma):
    from mechscope.attribution.patching import activation_patching

    got = _job(client, "/api/circuits/patch", {**PATCH, "what": ["resid", "heads"]})
    want = finite_json(activation_patching(tiny_gemma, CLEAN, CORRUPT, " Paris", " reliability", what=["resid", "heads"]).to_dict())
    assert _no_seconds(got) == _no_seconds(want)
    assert set(got["effects"]) == {"resid_pre"} and len(got["heads"]) == tiny_gemma.cfg.n_layers


def test_patch_cell_matches_heatmap_and_library(client, tiny_gemma):
    from mechscope.attribution.cell import patch_cell
    from mechscope.attribution.patching import activation_patching

    grid = activation_patching(tiny_gemma, CLEAN, CORRUPT, " Paris", " reliability", what="resid,attn,mlp,heads")
    for kind, layer, index in (("resid_pre", 1, 4), ("mlp_out", 0, 5), ("heads", 1, 2)):
        got = client.post("/api/circuits/patch-cell", json={**PATCH, "kind": kind, "layer": layer, "index": index}).json()
        want = patch_cell(tiny_gemma, CLEAN, CORRUPT, " Paris", " reliability", kind=kind, layer=layer, index=index)
        assert got == finite_json(want.to_dict())
        cell = grid.heads[layer, index] if kind == "heads" else grid.effects[kind][layer, index]
        assert got["value"] == pytest.approx(float(cell), abs=1e-4)
        assert len(got["top"]) == 10 and got["top"][0]["prob"] >= got["top"][-1]["prob"]
    # patching the residual of the one differing token at layer 0 turns the corrupt run into the clean run
    (diff,) = [p for p, (a, b) in enumerate(zip(grid.tokens, grid.corrupt_tokens)) if a != b]
    full = client.post("/api/circuits/patch-cell", json={**PATCH, "kind": "resid_pre", "layer": 0, "index": diff}).json()
    assert full["value"] == pytest.approx(1.0, abs=1e-4)
    assert [t["id"] for t in full["top"]] == [t["id"] for t in full["clean_top"]]


def test_trace_job_and_cell_equal_library(client, tiny_gemma):
    from mechscope.attribution.cell import trace_cell
    from mechscope.attribution.config import TraceConfig
    from mechscope.attribution.tracing import causal_trace

    cfg = TraceConfig(samples=3, window=1)
    got = _job(client, "/api/circuits/trace", FACT)
    want = causal_trace(tiny_gemma, FACT["prompt"], "France", " Paris", cfg)
    assert _no_seconds(got) == _no_seconds(finite_json(want.to_dict()))
    for kind, layer, pos in (("resid", 0, 4), ("mlp", 1, 5), ("attn", 1, -1)):
        cell = client.post("/api/circuits/trace-cell", json={**FACT, "kind": kind, "layer": layer, "position": pos}).json()
        assert cell == finite_json(trace_cell(tiny_gemma, FACT["prompt"], "France", " Paris", cfg, kind=kind, layer=layer,
                                              position=pos).to_dict())  # fmt: skip
        assert cell["value"] == pytest.approx(float(want.effects[kind][layer, pos]), abs=1e-5)


def test_dla_equals_library(client, tiny_gemma):
    from mechscope.attribution.dla import direct_logit_attribution

    got = client.post("/api/circuits/dla", json={"prompt": CLEAN, "answer": " Paris", "wrong": " reliability", "top_k": 5}).json()
    want = finite_json(direct_logit_attribution(tiny_gemma, CLEAN, " Paris", " reliability").to_dict(5))
    assert _no_seconds(got) == _no_seconds(want)


def test_facts_are_the_builtin_set(client):
    from mechscope.attribution.facts import FACTS

    facts = client.get("/api/circuits/facts").json()["facts"]
    assert len(facts) == len(FACTS) and facts[0] == FACTS[0]._asdict()


def test_a_failing_job_reports_one_line(client):
    r = client.post("/api/circuits/patch", json={**PATCH, "answer": " Paris", "wrong": " Paris"})
    snap = client.app.state.workbench.jobs.wait(r.json()["id"], timeout=30)
    assert snap["state"] == "failed" and "same token" in snap["error"] and "\n" not in snap["error"]


@pytest.mark.parametrize("path, body, code, words", [
    ("/api/circuits/patch", {**PATCH, "clean": ""}, 422, "empty"),
    ("/api/circuits/patch", {**PATCH, "what": ["neurons"]}, 422, "what"),
    ("/api/circuits/patch", {**PATCH, "bogus": 1}, 422, "bogus"),
    ("/api/circuits/trace", {**FACT, "samples": 500}, 422, "samples"),
    ("/api/circuits/trace", {**FACT, "window": 0}, 422, "window"),
    ("/api/circuits/dla", {"prompt": CLEAN, "answer": " Paris", "top_k": 99}, 422, "limit"),
    ("/api/circuits/dla", {"prompt": CLEAN, "answer": " Paris", "position": 40}, 422, "out of range"),
    ("/api/circuits/patch-cell", {**PATCH, "kind": "resid_pre", "layer": 9, "index": 0}, 422, "layer"),
    ("/api/circuits/patch-cell", {**PATCH, "kind": "heads", "layer": 0, "index": 99}, 422, "head"),
    ("/api/circuits/patch-cell", {**PATCH, "kind": "magic", "layer": 0, "index": 0}, 422, "kind"),
    ("/api/circuits/trace-cell", {**FACT, "subject": "Germany", "kind": "resid", "layer": 0, "position": 0}, 422, "subject"),
    ("/api/circuits/trace-cell", {**FACT, "kind": "resid", "layer": 0, "position": 30}, 422, "out of range"),
])  # fmt: skip
def test_bad_requests_are_one_line(client, path, body, code, words):
    r = client.post(path, json=body)
    assert r.status_code == code, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg



@pytest.mark.gemma
def test_gemma_cells_through_the_web(gemma):
    """On Gemma 3 270M (measured: the cell 0.78 of the grid, P(' Paris') 0.21 after the patch; the MLP window
    at layer 5 over ' Jordan' brings ' basketball' back to the top): the routes equal the library."""
    from fastapi.testclient import TestClient

    from mechscope.attribution.cell import patch_cell, trace_cell
    from mechscope.attribution.config import TraceConfig
    from mechscope.web import create_app

    body = {"clean": "The Eiffel Tower is in the city of", "corrupt": "The Colosseum is in the city of",
            "answer": " Paris", "wrong": " Rome"}  # fmt: skip
    fact = {"prompt": "Michael Jordan plays the sport of", "subject": "Michael Jordan", "answer": " basketball", "samples": 3}
    with TestClient(create_app(model=gemma)) as c:
        got = c.post("/api/circuits/patch-cell", json={**body, "kind": "resid_pre", "layer": 0, "index": 2}).json()
        traced = c.post("/api/circuits/trace-cell", json={**fact, "kind": "mlp", "layer": 5, "position": 2}).json()
    want = patch_cell(gemma, body["clean"], body["corrupt"], " Paris", " Rome", kind="resid_pre", layer=0, index=2)
    assert got == finite_json(want.to_dict())
    assert 0.5 < got["value"] < 1.0  # ' Eiffel' restored, ' Tower' still corrupt
    assert got["top"][0]["token"] == got["clean_top"][0]["token"] == " Paris" != got["corrupt_top"][0]["token"]
    cfg = TraceConfig(samples=3)
    assert traced == finite_json(trace_cell(gemma, fact["prompt"], "Michael Jordan", " basketball", cfg, kind="mlp",
                                            layer=5, position=2).to_dict())  # fmt: skip
    assert traced["top"][0]["token"] == " basketball" and traced["value"] > 0.1
