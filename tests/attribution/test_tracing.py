"""Causal tracing on a tiny model with a hand-planted subject → last-token path; noise scale; bad input."""

from __future__ import annotations

import pytest
import torch

from mechscope.attribution.tracing import TraceConfig, causal_trace, embedding_sigma, trace_facts, window_layers
from mechscope.attribution.facts import Fact
from mechscope.errors import ConfigError, PromptError
from tests.attribution.test_patching import planted
from tests.tiny import tiny_model

PROMPT, SUBJECT = "The capital of France is", "France"


def top_token(model, prompt: str) -> str:
    with torch.no_grad():
        return model.to_str_tokens([int(model(prompt)[0, -1].argmax())])[0]


def test_planted_path():
    model = planted(layer=1, head=3)  # information moves between positions only in layer 1
    answer = top_token(model, PROMPT)
    res = causal_trace(model, PROMPT, SUBJECT, answer, TraceConfig(samples=3, window=1, batch_size=16))
    (s,) = res.subject_positions
    assert res.tokens[s] == " France"
    full = res.clean_prob - res.corrupted_prob
    assert abs(full) > 1e-3
    resid, attn = res.effects["resid"], res.effects["attn"]
    assert resid[0, s] == pytest.approx(full, abs=1e-5)  # before the move: the subject holds everything
    assert resid[0, -1] == pytest.approx(0, abs=1e-6)  # nothing has reached the last token yet
    assert resid[1, -1] == pytest.approx(full, abs=1e-5) and resid[2, -1] == pytest.approx(full, abs=1e-5)
    assert resid[1:, s].abs().max() < 1e-6  # after the move the subject no longer matters
    assert attn[1, -1] == pytest.approx(full, abs=1e-5)  # the move itself
    attn[1, -1] = 0
    assert attn.abs().max() < 1e-6


def test_sigma_includes_embedding_scale():
    model = tiny_model("gemma3")  # Gemma scales embeddings by √d_model inside the embedding module
    ids = model.to_tokens(PROMPT).input_ids
    embed = model.collect(ids, ["hook_embed"])["hook_embed"][0, -1]
    sigma = embedding_sigma(model, embed, int(ids[0, -1]))
    assert sigma == pytest.approx(float(model.W_E.detach().float().std()) * model.cfg.d_model**0.5, rel=1e-3)


def test_windows_and_facts():
    assert list(window_layers(0, 10, 18)) == list(range(0, 5))
    assert list(window_layers(9, 10, 18)) == list(range(4, 14))
    assert list(window_layers(17, 10, 18)) == list(range(12, 18))
    assert list(window_layers(5, 1, 18)) == [5]
    model = tiny_model("llama")
    answer = top_token(model, PROMPT)
    out = trace_facts(model, [Fact(SUBJECT, PROMPT, answer)], TraceConfig(samples=2, window=1))
    assert out["n_facts"] == 1 and len(out["average"]["mlp"]["last_subject"]) == model.cfg.n_layers


def test_bad_inputs():
    model = tiny_model("llama")
    with pytest.raises(PromptError, match="does not occur in the prompt"):
        causal_trace(model, PROMPT, "Germany", " Paris")
    with pytest.raises(PromptError, match="not a single token"):
        causal_trace(model, PROMPT, SUBJECT, " Parisxyzzy")
    with pytest.raises(ConfigError, match="samples"):
        TraceConfig(samples=0)


def test_tour_lines_and_png(tmp_path, monkeypatch):
    from mechscope.attribution import tour

    model = tiny_model("llama")
    monkeypatch.setattr(tour, "PROMPT", PROMPT)
    monkeypatch.setattr(tour, "SUBJECT", SUBJECT)
    monkeypatch.setattr(tour, "ANSWER", top_token(model, PROMPT))
    monkeypatch.setattr(tour, "SAMPLES", 1)
    lines = tour.tour(model, tmp_path)
    assert (tmp_path / tour.PNG_NAME).stat().st_size > 1000 and "causal tracing" in lines[0]
