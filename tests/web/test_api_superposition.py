"""The Superposition page's routes answer exactly the lab's report to_dict()s."""

from __future__ import annotations

import pytest

from mechscope.io import finite_json


def _no_seconds(d):
    if isinstance(d, dict):
        return {k: _no_seconds(v) for k, v in d.items() if k != "seconds"}
    if isinstance(d, list):
        return [_no_seconds(v) for v in d]
    return d


def _job(client, path, body) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    snap = client.app.state.workbench.jobs.wait(r.json()["id"], timeout=60)
    assert snap["state"] == "done", snap
    return snap["result"]


def test_toy_equals_library(client):
    from mechscope.labs.superposition.config import ToyConfig
    from mechscope.labs.superposition.report import toy_report

    body = {"n": 5, "m": 2, "density": 0.05, "instances": 2, "steps": 300}
    got = _job(client, "/api/superposition/toy", body)
    want = finite_json(toy_report(ToyConfig(**body)).to_dict(weights=True))
    assert _no_seconds(got) == _no_seconds(want)
    assert len(got["W"]) == 2 and len(got["W"][0]) == 2 and len(got["W"][0][0]) == 5
    assert len(got["wtw"][0]) == 5 and got["wtw"][0][0][0] == pytest.approx(got["instances"][0]["norms"][0] ** 2, abs=1e-4)


def test_orthogonal_equals_library(client):
    from mechscope.labs.superposition.config import OrthoConfig
    from mechscope.labs.superposition.report import orthogonal_report

    body = {"n": 200, "dim": 10, "steps": 5}
    got = _job(client, "/api/superposition/orthogonal", body)
    want = finite_json(orthogonal_report(OrthoConfig(**body)).to_dict(hist=True))
    assert _no_seconds(got) == _no_seconds(want)
    assert set(got["hist"]) == {"random", "3b1b", "maxcos"}
    assert sum(got["hist"]["random"]["pairs"]) == pytest.approx(200 * 199 / 2)


def test_memory_equals_library(client):
    from mechscope.labs.superposition.report import memory_report

    got = client.post("/api/superposition/memory", json={"bias": -1}).json()
    assert got == finite_json(memory_report(-1.0).to_dict(detail=True))
    jordan = got["toy"][0]
    assert jordan["prompt"] == "Michael Jordan" and jordan["basketball"] == 1.0
    assert [r["basketball"] for r in got["toy"][1:]] == [0.0, 0.0]


@pytest.mark.parametrize("path, body, code, words", [
    ("/api/superposition/toy", {"n": 2, "m": 3}, 422, "n (features) must be >= m"),
    ("/api/superposition/toy", {"density": 0}, 422, "density"),
    ("/api/superposition/toy", {"n": 5000}, 422, "n"),
    ("/api/superposition/toy", {"steps": 10**9}, 422, "steps"),
    ("/api/superposition/orthogonal", {"loss": "l2"}, 422, "loss"),
    ("/api/superposition/orthogonal", {"n": 10**6}, 422, "n"),
    ("/api/superposition/memory", {"bias": "x"}, 422, "bias"),
    ("/api/superposition/memory", {"weights": 1}, 422, "weights"),
])  # fmt: skip
def test_bad_requests_are_one_line(client, path, body, code, words):
    r = client.post(path, json=body)
    assert r.status_code == code, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg
