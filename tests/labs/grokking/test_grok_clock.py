"""A model built analytically to run the clock algorithm: the analysis must recognise it."""

from __future__ import annotations

import pytest
import torch

from mechscope.labs.grokking import fourier
from mechscope.labs.grokking.clock import clock_params
from mechscope.labs.grokking.config import GrokConfig, GrokModelConfig
from mechscope.labs.grokking.data import Dataset, all_pairs, tokens
from mechscope.labs.grokking.measures import forward_all_pairs, measures_at
from mechscope.labs.grokking.model import reference_forward

CLOCK = GrokModelConfig(p=23, d_model=32, n_heads=4, d_head=8, d_mlp=96)
FREQS = [3, 5, 8]


@pytest.fixture(scope="module")
def clock():
    return clock_params(CLOCK, FREQS, scale=150.0)


def test_clock_model_is_exact_and_restricted_loss_is_near_zero(clock):
    data = Dataset.build(GrokConfig(model=CLOCK))
    m = measures_at(clock, data, 0, FREQS, "add")
    assert m["train_acc"] == 1.0 and m["test_acc"] == 1.0
    assert m["restricted_loss"] < 1e-6  # the key-frequency terms alone solve the task
    assert m["excluded_loss_all"] > 10.0  # without them it is far worse than chance (log 23 = 3.1)
    assert min(m["excluded_loss"]) > m["train_loss"] + 1.0  # each frequency matters on its own
    assert m["fve_fraction"] == 1.0


def test_neuron_clustering_recovers_the_planted_frequencies(clock):
    _, post = forward_all_pairs(clock)
    best, fve, _ = fourier.neuron_frequency_fve(post)
    assert fourier.key_frequencies(best, fve) == FREQS
    assert sorted(set(best.tolist())) == FREQS and float(fve.min()) > 0.9


def test_clock_model_through_the_reference_forward(clock):
    a, b = all_pairs(23)
    logits = reference_forward(clock, tokens(a, b, 23)[None])[0, :, -1]
    assert torch.equal(logits.argmax(-1), (a + b) % 23)
    fast, _ = forward_all_pairs(clock)
    assert torch.allclose(logits.double(), fast, atol=1e-3)


def test_measures_on_a_random_model_do_not_look_like_a_clock():
    from mechscope.labs.grokking.model import init_params

    data = Dataset.build(GrokConfig(model=CLOCK))
    m = measures_at(init_params(CLOCK, [0]), data, 0, FREQS, "add")
    assert m["restricted_loss"] > 2.5 and m["test_acc"] < 0.2 and m["fve_fraction"] < 0.5
