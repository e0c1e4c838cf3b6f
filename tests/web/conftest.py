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
