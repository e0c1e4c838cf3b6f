"""The grokking section of `mechscope tour` (on the tiny run, copied where the tour looks for it)."""

from __future__ import annotations

import shutil


def test_tour_analyses_and_draws(tmp_path, grokked_run):
    from mechscope.labs.grokking.tour import RUN_NAME, tour

    shutil.copytree(grokked_run, tmp_path / RUN_NAME)  # an existing run is resumed (here: complete)
    lines = tour(tmp_path)
    text = "\n".join(lines)
    assert "key frequencies:" in text and "R²" in text and "test accuracy 100.0%" in text
    assert (tmp_path / "grok_probe_circle.png").stat().st_size > 10_000
    assert (tmp_path / "grok_neuron_crest.png").stat().st_size > 10_000
    assert str(tmp_path / RUN_NAME) in lines[-1]


def test_tour_run_is_the_fast_recipe_stopped_after_cleanup():
    from mechscope.labs.grokking.config import GrokConfig
    from mechscope.labs.grokking.tour import TOUR_EPOCHS, tour_config

    cfg, fast = tour_config(), GrokConfig.fast()
    assert cfg.recipe == "fast" and cfg.epochs == TOUR_EPOCHS < fast.epochs
    # seed 0's cleanup ended at epoch 880 (Intel) and 1,030 (AMD) in full fast runs: stop past both
    assert TOUR_EPOCHS >= 1_100
    assert {**cfg.to_dict(), "epochs": 0, "n_checkpoints": 0, "n_log_checkpoints": 0} == {
        **fast.to_dict(), "epochs": 0, "n_checkpoints": 0, "n_log_checkpoints": 0}  # otherwise the recipe itself
