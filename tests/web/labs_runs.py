"""A tiny grokking run for the web tests of the Grokking page (train + analyse, about 2 s on one thread)."""

from __future__ import annotations

from pathlib import Path

TINY_EPOCHS = 300


def make_grok_run(run_dir: Path, analyse: bool = True) -> Path:
    """``GrokConfig.small`` cut to 300 epochs and 16 checkpoints (it memorises; the page needs no grokking)."""
    from mechscope.labs.grokking.analyze import analyze
    from mechscope.labs.grokking.config import GrokConfig
    from mechscope.labs.grokking.train import train
    from mechscope.runtime import cpu_threads

    with cpu_threads(1):
        train(GrokConfig.small(epochs=TINY_EPOCHS, n_checkpoints=10, n_log_checkpoints=6), run_dir, progress=False)
        if analyse:
            analyze(run_dir, progress=False)
    return run_dir
