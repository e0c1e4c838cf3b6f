"""POST /api/lens answers exactly what the library's logit_lens(...).to_dict() gives, plus the view."""

from __future__ import annotations

import pytest

from mechscope.io import finite_json
from mechscope.lens.logit import logit_lens

PROMPT = "The capital of France is Paris"


def test_lens_equals_library(client, tiny_gemma):
    got = client.post("/api/lens", json={"prompt": PROMPT}).json()
    want = finite_json(logit_lens(tiny_gemma, PROMPT, top_k=10).to_dict())
    view = got.pop("view")
    assert got == want
    n_rows, d_model = len(want["rows"]), tiny_gemma.cfg.d_model
    assert view["position"] == len(want["tokens"]) - 1
    assert len(view["resid"]) == n_rows and all(len(v) == d_model for v in view["resid"])


def test_lens_options_and_view_position(client, tiny_gemma):
    body = {"prompt": PROMPT, "sublayers": True, "top_k": 3, "position": 2, "targets": [" Paris"]}
    got = client.post("/api/lens", json=body).json()
    res = logit_lens(tiny_gemma, PROMPT, top_k=3, sublayers=True, targets=[" Paris"])
    view = got.pop("view")
    assert got == finite_json(res.to_dict())
    assert view["position"] == 2
    assert view["resid"][5] == pytest.approx(res.resid[5, 2].tolist(), rel=1e-6)
    assert len(got["rows"]) == 2 * tiny_gemma.cfg.n_layers + 1


@pytest.mark.parametrize("body, code, words", [
    ({"prompt": ""}, 422, "empty"),
    ({"prompt": PROMPT, "position": 99}, 422, "out of range"),
    ({"prompt": PROMPT, "top_k": 0}, 422, "top_k"),
    ({"prompt": PROMPT, "top_k": 51}, 422, "limit"),
    ({"prompt": PROMPT, "lens": "tuned"}, 404, "no tuned lens"),
    ({"prompt": PROMPT, "lens": "magic"}, 422, "lens"),
    ({"prompt": PROMPT, "color": "red"}, 422, "color"),
    ({"prompt": 12}, 422, "prompt"),
    ({}, 422, "prompt"),
])  # fmt: skip
def test_lens_bad_requests_are_one_line(client, body, code, words):
    r = client.post("/api/lens", json=body)
    assert r.status_code == code, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg


def test_tuned_lens_toggle(tmp_path, monkeypatch):
    """With a tuned lens saved in the model's default place, lens=tuned reads through it (and info says so)."""
    import torch
    from fastapi.testclient import TestClient

    from mechscope.lens.tuned import TunedLens, default_lens_dir, load_tuned_lens
    from mechscope.web import create_app
    from tests.tiny import tiny_model

    monkeypatch.setenv("MECHSCOPE_HOME", str(tmp_path))
    model = tiny_model("gemma3")
    client = TestClient(create_app(model=model))
    assert client.get("/api/info").json()["tuned_lens"] is False
    lens = TunedLens.for_model(model)
    with torch.no_grad():
        lens.weight.normal_(0, 0.05)
    lens.save(default_lens_dir(model))
    assert client.get("/api/info").json()["tuned_lens"] is True
    got = client.post("/api/lens", json={"prompt": PROMPT, "lens": "tuned"}).json()
    got.pop("view")
    want = logit_lens(model, PROMPT, lens=load_tuned_lens(default_lens_dir(model), model))
    assert got == finite_json(want.to_dict()) and got["lens"] == "tuned"
    assert got["rows"][1]["cells"] != client.post("/api/lens", json={"prompt": PROMPT}).json()["rows"][1]["cells"]
    r = client.post("/api/lens", json={"prompt": PROMPT, "lens": "tuned", "sublayers": True})
    assert r.status_code == 404 and "\n" not in r.json()["error"]
