"""Background jobs: long work (a grokking run, SAE features, a crosscoder) off the request thread, with
progress polling and cancel. A crashed job keeps its one-line error; the server keeps serving.

The interface a page's route uses::

    def work(job: JobContext) -> dict:               # runs in a worker thread
        for step in range(100):
            job.progress(step, 100, "training")      # also raises JobCancelled once cancel was asked
            ...
        return {"loss": 0.1}                         # the job's JSON result

    job = jobs.submit("grok-train", work)            # jobs = request.app.state.workbench.jobs
    return job.to_dict()                             # {"id": ..., "state": "queued", ...}

The page then polls ``GET /api/jobs/{id}`` and may ``DELETE /api/jobs/{id}`` to cancel. Cancel is
cooperative: it takes effect at the job's next ``progress``/``check`` call (a queued job never starts).
Work that needs the model takes ``workbench.using_model()`` itself, per step, so requests can interleave.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from mechscope.errors import MechscopeError, OutOfRangeError

log = logging.getLogger(__name__)
State = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED = ("done", "failed", "cancelled")


class JobCancelled(Exception):
    """Raised inside a job by :meth:`JobContext.check` once its cancel was asked for."""


def one_line(exc: BaseException) -> str:
    """A one-line message: a mechscope error's own text, else the exception's type and first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MechscopeError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class Job:
    """One submitted job (its fields are read under the manager's lock)."""

    id: str
    kind: str
    state: State = "queued"
    done: float = 0
    total: float | None = None
    message: str = ""
    result: Any = None
    error: str | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict:
        """The JSON of ``GET /api/jobs/{id}``."""
        return {"id": self.id, "kind": self.kind, "state": self.state,
                "progress": {"done": self.done, "total": self.total, "message": self.message},
                "result": self.result, "error": self.error, "submitted": self.submitted, "started": self.started,
                "finished": self.finished}  # fmt: skip


class JobContext:
    """What a job's function gets: report progress, check for cancel."""

    def __init__(self, job: Job, lock: threading.Lock):
        self._job, self._lock = job, lock

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def cancelled(self) -> bool:
        return self._job.cancel_requested.is_set()

    def check(self) -> None:
        """Raise :class:`JobCancelled` if cancel was asked for (call it between steps)."""
        if self.cancelled:
            raise JobCancelled()

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Record progress (``done`` of ``total``, and a short message), then :meth:`check`."""
        with self._lock:
            self._job.done, self._job.total, self._job.message = done, total, str(message)[:200]
        self.check()


class JobManager:
    """Runs submitted functions on ``workers`` background threads; remembers the last ``keep`` jobs."""

    def __init__(self, workers: int = 1, keep: int = 50):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mechscope-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._keep = keep

    def submit(self, kind: str, fn: Callable[[JobContext], Any]) -> Job:
        """Queue ``fn(ctx)``; its return value (JSON-able) becomes the job's ``result``."""
        with self._lock:
            job = Job(id=f"{next(self._ids)}-{kind}", kind=kind)
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, fn)
        return job

    def _run(self, job: Job, fn: Callable[[JobContext], Any]) -> None:
        with self._lock:
            if job.cancel_requested.is_set():
                job.state, job.finished = "cancelled", time.time()
                return
            job.state, job.started = "running", time.time()
        try:
            result = fn(JobContext(job, self._lock))
        except JobCancelled:
            outcome: tuple = ("cancelled", None, None)
        except BaseException as exc:  # noqa: BLE001 - a job's crash is reported, never raised
            if not isinstance(exc, MechscopeError):
                log.exception("background job %s (%s) crashed", job.id, job.kind)
            outcome = ("failed", None, one_line(exc))
        else:
            outcome = ("done", result, None)
        with self._lock:
            job.state, job.result, job.error = outcome
            job.finished = time.time()

    def get(self, job_id: str) -> Job:
        with self._lock:
            if job_id not in self._jobs:
                raise OutOfRangeError(f"no job {job_id!r:.60}: it never existed or was forgotten (the last {self._keep} are kept)")
            return self._jobs[job_id]

    def snapshot(self, job_id: str) -> dict:
        """The job's JSON, read consistently under the lock."""
        job = self.get(job_id)
        with self._lock:
            return job.to_dict()

    def list(self) -> list[dict]:
        with self._lock:
            return [j.to_dict() for j in self._jobs.values()]

    def cancel(self, job_id: str) -> dict:
        """Ask a job to stop (a finished job is left as it is); returns its JSON."""
        job = self.get(job_id)
        with self._lock:
            if job.state not in FINISHED:
                job.cancel_requested.set()
                if job.state == "queued":
                    job.state, job.finished = "cancelled", time.time()
            return job.to_dict()

    def wait(self, job_id: str, timeout: float = 10.0) -> dict:
        """Block until the job finishes (tests and scripts); returns its JSON."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = self.snapshot(job_id)
            if snap["state"] in FINISHED:
                return snap
            time.sleep(0.01)
        return self.snapshot(job_id)

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state in FINISHED]
        while len(self._jobs) > self._keep and finished:
            self._jobs.pop(finished.pop(0))

    def shutdown(self) -> None:
        with self._lock:
            for job in self._jobs.values():
                job.cancel_requested.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
