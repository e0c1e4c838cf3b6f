"""Fixtures of the grokking lab tests: tiny models (p = 23), one thread, and one tiny run that groks."""

from __future__ import annotations

import os

import pytest
import torch

from mechscope.labs.grokking.config import GrokConfig, GrokModelConfig

TINY = GrokModelConfig(p=23, d_model=32, n_heads=4, d_head=8, d_mlp=64)


TEST_THREADS = int(os.environ.get("MECHSCOPE_TEST_THREADS", "1"))
"""torch threads for these tests. Default 1: the tiny tensors here are faster on one thread, and two
threads stall on a busy machine. benchmarks/kernel_sweep.py sets MECHSCOPE_TEST_THREADS=2 to check
that training outcomes also hold with another reduction split."""


@pytest.fixture(autouse=True)
def _test_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_cfg() -> GrokConfig:
    """Paper recipe on the tiny model, 60 epochs, a handful of checkpoints."""
    return GrokConfig.paper(model=TINY, epochs=60, n_checkpoints=6, n_log_checkpoints=4, eval_every=5)


GROKKING_EPOCHS = 1500


def _grokking_cfg(**overrides) -> GrokConfig:
    base = dict(model=TINY, epochs=GROKKING_EPOCHS, lr=3e-3, weight_decay=2.0, frac_train=0.8, n_checkpoints=30,
                n_log_checkpoints=10)  # fmt: skip
    return GrokConfig(**{**base, **overrides})


@pytest.fixture
def grokking_cfg():
    """Factory of the tiny config that groks: 80 % of the pairs, lr 3e-3, weight decay 2, 1,500 epochs.

    Chosen so that the outcome does not hinge on one epoch on any CPU. Seed 0 reaches 99 % test
    accuracy near epoch 340-420 and then holds 100 % for the last 1,000 epochs under every kernel set
    (ATEN_CPU_CAPABILITY default, avx2, avx512; 1 or 2 threads); seeds 1-3 reach 100 % too. The
    earlier config (lr 1e-2 with Grokfast-EMA, 600 epochs) oscillated between 37 % and 98 % after
    grokking, so its last epoch landed at 97-98 % on an Intel CPU and at 99+ % on an AMD one."""
    return _grokking_cfg


@pytest.fixture(scope="session")
def grokked_run(tmp_path_factory):
    """A trained tiny run directory (session-wide: train once, about 4 s)."""
    from mechscope.labs.grokking.train import train
    from mechscope.runtime import cpu_threads

    run_dir = tmp_path_factory.mktemp("grok") / "run"
    with cpu_threads(TEST_THREADS):
        train(_grokking_cfg(), run_dir, progress=False)
    return run_dir
