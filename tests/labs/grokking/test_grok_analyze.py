"""analyze and figures on a tiny run that groks."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from mechscope.labs.grokking import rundir
from mechscope.labs.grokking.analyze import SUMMARY_KEYS, analyze


def test_analyze_summary_is_stable_and_consistent(grokked_run):
    result = analyze(grokked_run, progress=False, reuse=False)
    s, epochs = result.summary, result.run.config.epochs
    assert list(s) == list(SUMMARY_KEYS)
    json.dumps(s)  # JSON-safe
    assert s["p"] == 23 and s["final_train_acc"] == 1.0 and s["final_test_acc"] >= 0.99
    assert isinstance(s["epoch_train_acc_99"], int) and isinstance(s["epoch_test_acc_99"], int)
    # grokking: the test set follows the train set well after it, and within the first half of the run,
    # so the final checkpoint is ~1,000 epochs past it (margin against CPU-dependent rounding)
    assert s["epoch_train_acc_99"] + 100 < s["epoch_test_acc_99"] <= epochs // 2
    assert 1 <= len(s["key_frequencies"]) <= 11
    assert all(1 <= k <= 11 for k in s["key_frequencies"])
    ph = s["phases"]
    assert 0 <= ph["memorisation_end"] <= ph["circuit_formation_end"] <= ph["cleanup_end"] <= epochs
    # after grokking the key frequencies alone do better than the model, and removing them hurts
    assert s["restricted_loss_final"] < s["excluded_loss_final"]
    assert s["excluded_loss_final"] > 1.0
    meas = result.measures
    assert meas["epoch"].tolist() == result.run.epochs
    assert meas["excluded_loss"].shape == (len(result.run.epochs), len(s["key_frequencies"]))
    # the measures at the last checkpoint agree with the training log
    assert abs(meas["train_loss"][-1] - result.run.metrics["train_loss"][-1]) < 1e-4
    we = np.asarray(result.details["W_E_frequency_norms"])
    assert int(np.argmax(we)) + 1 in s["key_frequencies"]  # the embedding's strongest frequency is key
    assert len(result.details["neuron_frequency"]) == 64


def test_analysis_is_saved_and_reused(grokked_run):
    first = analyze(grokked_run, progress=False)
    saved = json.loads((grokked_run / "seed_0" / rundir.ANALYSIS_FILE).read_text())
    assert saved["summary"] == first.summary
    again = analyze(grokked_run, progress=False)
    assert again.summary == first.summary
    assert np.array_equal(again.measures["gini_W_L"], first.measures["gini_W_L"])


def test_figures_are_written(grokked_run, tmp_path):
    from mechscope.labs.grokking.figures import write_figures

    paths = write_figures(grokked_run, out_dir=tmp_path, progress=False, animation_frames=20)
    names = {p.name for p in paths}
    assert {"curves.png", "progress_measures.png", "fourier_spectra.png", "neuron_wave.png", "neuron_loops.png",
            "neuron_surfaces.png", "neuron_crest.png", "logit_surface.png", "probe_circle.png", "formation.gif"} <= names  # fmt: skip
    for path in paths:
        with Image.open(path) as im:
            assert im.size[0] >= 400 and im.size[1] >= 300
    with Image.open(tmp_path / "formation.gif") as gif:
        assert gif.n_frames >= 20
