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
