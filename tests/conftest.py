"""Shared fixtures: tiny random models for every adapter (built from configs, no downloads)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch

from tests.tiny import TINY_ARCHS, tiny_model


@pytest.fixture(params=TINY_ARCHS)
def tiny(request):
    """A HookedModel for each tiny architecture."""
    return tiny_model(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def gemma():
    """The real embedded Gemma 3 270M (converted once into $MECHSCOPE_HOME, then cached)."""
    import mechscope

    return mechscope.load("gemma-3-270m", device="cpu")


@pytest.fixture
def one_thread():
    """Tiny tensors are faster on one thread, and two threads stall on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
