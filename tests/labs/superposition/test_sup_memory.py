"""The hand-built AND neuron: Michael Jordan adds basketball, the others nothing."""

from __future__ import annotations

import pytest

from mechscope.labs.superposition.memory import gemma_basketball_neurons, plot, run


def test_and_neuron_outputs():
    out = {r["prompt"]: r for r in run()}
    assert out["Michael Jordan"]["basketball"] == pytest.approx(1.0)
    assert out["Michael Phelps"]["basketball"] == 0.0 and out["Alexis Jordan"]["basketball"] == 0.0
    assert out["Michael Jordan"]["pre"] == pytest.approx(1.0) and out["Alexis Jordan"]["pre"] == pytest.approx(0.0)


def test_without_the_bias_it_is_no_and():
    out = {r["prompt"]: r["basketball"] for r in run(bias=0.0)}
    assert out == {"Michael Jordan": 2.0, "Michael Phelps": 1.0, "Alexis Jordan": 1.0}


def test_plot(tmp_path):
    assert plot(tmp_path / "and.png").stat().st_size > 5_000


def test_probe_on_a_tiny_model(tiny):
    from mechscope.errors import PromptError

    hits = gemma_basketball_neurons(tiny, prompt="The capital of France", subject="The capital", target="a", top=5)
    assert len(hits) == 5 and [h.effect for h in hits] == sorted((h.effect for h in hits), reverse=True)
    assert all(0 <= h.layer < tiny.cfg.n_layers and 0 <= h.neuron < tiny.cfg.d_mlp for h in hits)
    with pytest.raises(PromptError):
        gemma_basketball_neurons(tiny, prompt="Paris", subject="The capital", target="a")
