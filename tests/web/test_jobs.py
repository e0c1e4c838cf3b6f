"""The job manager: progress polling, cancel, a crash reported in one line while the server keeps serving."""

from __future__ import annotations

import threading
import time

import pytest

from mechscope.web.jobs import JobManager


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_progress_then_result_over_http(client, app):
    gate = threading.Event()

    def work(job):
        job.progress(1, 4, "step one")
        gate.wait(5)
        for i in range(2, 5):
            job.progress(i, 4, f"step {i}")
        return {"answer": 42}

    job = app.state.workbench.jobs.submit("count", work)
    assert wait_for(lambda: client.get(f"/api/jobs/{job.id}").json()["progress"]["done"] == 1)
    snap = client.get(f"/api/jobs/{job.id}").json()
    assert snap["state"] == "running" and snap["progress"] == {"done": 1, "total": 4, "message": "step one"}
    gate.set()
    assert wait_for(lambda: client.get(f"/api/jobs/{job.id}").json()["state"] == "done")
    snap = client.get(f"/api/jobs/{job.id}").json()
    assert snap["result"] == {"answer": 42} and snap["progress"]["done"] == 4 and snap["error"] is None
    assert job.id in [j["id"] for j in client.get("/api/jobs").json()["jobs"]]


def test_cancel_running_and_queued(client, app):
    started = threading.Event()
    steps = []

    def work(job):
        started.set()
        for i in range(10_000):
            steps.append(i)
            job.progress(i, 10_000)
            time.sleep(0.001)
        return "finished"

    running = app.state.workbench.jobs.submit("long", work)
    queued = app.state.workbench.jobs.submit("never", lambda job: steps.append("never ran"))
    assert started.wait(5)
    assert client.delete(f"/api/jobs/{queued.id}").json()["state"] == "cancelled"
    client.delete(f"/api/jobs/{running.id}")
    assert wait_for(lambda: client.get(f"/api/jobs/{running.id}").json()["state"] == "cancelled")
    n = len(steps)
    time.sleep(0.05)
    assert len(steps) == n < 10_000 and "never ran" not in steps
    assert client.get(f"/api/jobs/{running.id}").json()["result"] is None


def test_crash_is_one_line_and_server_keeps_serving(client, app):
    def work(job):
        job.progress(1, 2)
        raise ValueError("the data went away\nwith a long story")

    job = app.state.workbench.jobs.submit("crash", work)
    assert wait_for(lambda: client.get(f"/api/jobs/{job.id}").json()["state"] == "failed")
    assert client.get(f"/api/jobs/{job.id}").json()["error"] == "ValueError: the data went away"
    assert client.get("/api/info").status_code == 200
    assert client.post("/api/lens", json={"prompt": "still here"}).status_code == 200
    ok = app.state.workbench.jobs.submit("after", lambda job: "fine")
    assert app.state.workbench.jobs.wait(ok.id)["result"] == "fine"


def test_unknown_job_and_forgetting():
    jobs = JobManager(workers=1, keep=3)
    ids = [jobs.submit("j", lambda job, i=i: i).id for i in range(6)]
    for i in ids:
        if i in [j["id"] for j in jobs.list()]:
            jobs.wait(i)
    jobs.submit("last", lambda job: None)
    assert len(jobs.list()) <= 4
    from mechscope.errors import OutOfRangeError

    with pytest.raises(OutOfRangeError, match="no job"):
        jobs.get("nope")
    jobs.shutdown()


def test_unknown_job_over_http(client):
    r = client.get("/api/jobs/99-nothing")
    assert r.status_code == 422 and "no job" in r.json()["error"]
    assert client.delete("/api/jobs/99-nothing").status_code == 422
