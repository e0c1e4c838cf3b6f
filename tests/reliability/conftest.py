"""Fixtures of the reliability suite: one sandbox per module, a tiny model directory, a private
MECHSCOPE_HOME, progress bars off, and the tiny model loaded once (commands call mechscope.load)."""

from __future__ import annotations

import functools

import pytest

from tests.reliability.harness import STATS, Sandbox
from tests.tiny import save_tiny_dir


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    model_dir = save_tiny_dir(tmp_path_factory.mktemp("tiny-model"), "gemma3")
    return Sandbox.make(tmp_path_factory.mktemp("sandbox"), model_dir)


@pytest.fixture(scope="module", autouse=True)
def _quiet_private_home(tmp_path_factory):
    """A private $MECHSCOPE_HOME (tuned lenses land there by default), no progress bars, and loads of the
    tiny model memoised: hundreds of generated commands share one load."""
    import mechscope.model.loading as loading

    mp = pytest.MonkeyPatch()
    mp.setenv("MECHSCOPE_HOME", str(tmp_path_factory.mktemp("home")))
    mp.setenv("TQDM_DISABLE", "1")
    mp.delenv("MECHSCOPE_DEBUG", raising=False)
    real = loading.load

    @functools.lru_cache(maxsize=4)
    def cached(spec: str, device: str = "auto", dtype=None):
        return real(spec, device=device, dtype=dtype)

    def load(spec: str = "gemma-3-270m", device: str = "auto", dtype=None):
        if spec == "gemma-3-270m":
            raise AssertionError("the reliability suite must never load the real model")
        return cached(spec, device, dtype)

    mp.setattr(loading, "load", load)
    yield
    mp.undo()


def pytest_terminal_summary(terminalreporter):
    if STATS["cases"]:
        terminalreporter.write_line("reliability: " + ", ".join(f"{k} {v}" for k, v in STATS.items()))
