"""The Grokking page's routes answer exactly the lab's to_dict()s; run paths stay inside the roots."""

from __future__ import annotations

import pytest

from mechscope.io import finite_json
from tests.web.labs_runs import make_grok_run


@pytest.fixture(scope="module")
def grok_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("grokruns")
    make_grok_run(root / "tiny")
    make_grok_run(root / "nested" / "raw", analyse=False)
    (root / "notarun").mkdir()
    (root / "notarun" / "notes.txt").write_text("a user's file")
    return root


@pytest.fixture(scope="module")
def grok_client(tiny_gemma, grok_root):
    from fastapi.testclient import TestClient

    from mechscope.web import create_app

    with TestClient(create_app(model=tiny_gemma, runs=[grok_root])) as c:
        yield c


def test_runs_lists_grokking_runs_only(grok_client, grok_root):
    runs = grok_client.get("/api/grok/runs").json()["runs"]
    assert [r["name"] for r in runs] == ["nested/raw", "tiny"]
    tiny = runs[1]
    assert tiny["analysed"] == [0] and runs[0]["analysed"] == []
    assert tiny["p"] == 23 and tiny["recipe"] == "small" and tiny["step"] == tiny["epochs"] == 300


def test_analysis_equals_library(grok_client, grok_root):
    from mechscope.labs.grokking.analyze import analyze

    got = grok_client.post("/api/grok/analysis", json={"run": "tiny"}).json()
    assert got["job"] is None
    want = finite_json(analyze(grok_root / "tiny", progress=False).to_dict())
    assert got["analysis"] == want
    assert want["summary"]["p"] == 23 and len(want["epochs"]) == len(want["measures"]["epoch"])


def test_analysis_of_a_raw_run_is_a_job(grok_client, grok_root, tmp_path):
    from mechscope.labs.grokking.analyze import analyze

    r = grok_client.post("/api/grok/analysis", json={"run": "nested/raw", "recompute": True}).json()
    assert r["analysis"] is None and r["job"]["kind"] == "grok-analyze"
    snap = grok_client.app.state.workbench.jobs.wait(r["job"]["id"], timeout=60)
    assert snap["state"] == "done", snap
    assert snap["result"] == finite_json(analyze(grok_root / "nested" / "raw", progress=False).to_dict())


def test_checkpoint_equals_library_and_changes_with_epoch(grok_client, grok_root):
    from mechscope.labs.grokking.analyze import analyze
    from mechscope.labs.grokking.checkpoint import checkpoint_view

    a = analyze(grok_root / "tiny", progress=False)
    first, last = a.run.epochs[1], a.run.epochs[-1]
    got = grok_client.post("/api/grok/checkpoint", json={"run": "tiny", "epoch": last}).json()
    assert got == finite_json(checkpoint_view(a, last).to_dict())
    early = grok_client.post("/api/grok/checkpoint", json={"run": "tiny", "epoch": first, "token": 5}).json()
    assert early == finite_json(checkpoint_view(a, first, 5).to_dict())
    assert early["logit_token"] == 5 and len(early["logit_surface"]) == 23 and len(early["probe_circle"]) == 23
    assert early["W_E_frequency_norms"] != got["W_E_frequency_norms"]
    assert all(len(n["surface"]) == 23 for n in got["neurons"]) and got["neurons"]
    # cached: the same object comes back
    again = grok_client.post("/api/grok/checkpoint", json={"run": "tiny", "epoch": last}).json()
    assert again == got


@pytest.mark.parametrize("body, code, words", [
    ({"run": "../../etc"}, 403, "outside"),
    ({"run": "/etc"}, 403, "outside"),
    ({"run": "notarun"}, 404, "not a grokking run"),
    ({"run": "missing"}, 404, "does not exist"),
    ({"run": "tiny", "seed": 7}, 404, "seed 7"),
    ({"run": "tiny", "extra": 1}, 422, "extra"),
    ({}, 422, "run"),
])  # fmt: skip
def test_analysis_bad_requests(grok_client, body, code, words):
    r = grok_client.post("/api/grok/analysis", json=body)
    assert r.status_code == code, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg


@pytest.mark.parametrize("body, code, words", [
    ({"run": "tiny", "epoch": 7}, 422, "no checkpoint"),
    ({"run": "tiny", "epoch": 300, "token": 23}, 422, "token"),
    ({"run": "../tiny", "epoch": 300}, 403, "outside"),
    ({"run": "tiny"}, 422, "epoch"),
])  # fmt: skip
def test_checkpoint_bad_requests(grok_client, body, code, words):
    r = grok_client.post("/api/grok/checkpoint", json=body)
    assert r.status_code == code, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg


def test_checkpoint_needs_an_analysis(grok_client, grok_root):
    make_grok_run(grok_root / "raw2", analyse=False)
    r = grok_client.post("/api/grok/checkpoint", json={"run": "raw2", "epoch": 300})
    assert r.status_code == 404 and "no current analysis" in r.json()["error"]


def test_train_job_reports_progress_and_equals_library(grok_client, grok_root):
    r = grok_client.post("/api/grok/train", json={"out": "web-made", "epochs": 120})
    assert r.status_code == 200, r.text
    snap = grok_client.app.state.workbench.jobs.wait(r.json()["id"], timeout=60)
    assert snap["state"] == "done", snap
    assert snap["progress"]["done"] == snap["progress"]["total"] == 120
    res = snap["result"]
    assert res["epochs"] == 120 and res["complete"] and res["seeds"] == [0]
    assert res["dir"] == str(grok_root / "web-made")
    names = [x["name"] for x in grok_client.get("/api/grok/runs").json()["runs"]]
    assert "web-made" in names


def test_train_cancel_stops_a_run(grok_client, grok_root):
    jobs = grok_client.app.state.workbench.jobs
    r = grok_client.post("/api/grok/train", json={"out": "cancelled", "epochs": 100_000, "p": 23})
    job_id = r.json()["id"]
    import time

    deadline = time.monotonic() + 30
    while jobs.snapshot(job_id)["progress"]["done"] < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    grok_client.delete(f"/api/jobs/{job_id}")
    snap = jobs.wait(job_id, timeout=30)
    assert snap["state"] == "cancelled"
    assert 5 <= snap["progress"]["done"] < 100_000


@pytest.mark.parametrize("body, code, words", [
    ({"out": "../escape"}, 403, "outside"),
    ({"out": "/tmp/elsewhere"}, 403, "outside"),
    ({"out": "notarun"}, 422, "did not create"),
    ({"out": "x", "recipe": "huge"}, 422, "recipe"),
    ({"out": "x", "frac": 1.5}, 422, "frac"),
    ({"out": "x", "p": 2}, 422, "p"),
])  # fmt: skip
def test_train_bad_requests(grok_client, body, code, words):
    r = grok_client.post("/api/grok/train", json=body)
    assert r.status_code == code, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg
