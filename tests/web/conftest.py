"""Fixtures for the web workbench: one tiny Gemma-3-shaped model behind a FastAPI TestClient."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the web workbench needs fastapi (make install)")


@pytest.fixture(scope="module")
def tiny_gemma():
    from tests.tiny import tiny_model

    return tiny_model("gemma3")


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    (root / "grok-1").mkdir()
    return root


@pytest.fixture(scope="module")
def app(tiny_gemma, runs_root):
    from mechscope.web import create_app

    return create_app(model=tiny_gemma, runs=[runs_root])


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


class LiveServer:
    """A real uvicorn server for ``app`` on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app):
        import socket
        import threading

        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def live(app):
    with LiveServer(app) as server:
        yield server
