"""Direct logit attribution: every split adds up to the whole (1e-4), on every tiny architecture and Gemma."""

from __future__ import annotations

import pytest
import torch

from mechscope.attribution.dla import direct_logit_attribution
from mechscope.errors import OutOfRangeError, PromptError

PROMPT = "The capital of France is"


def check_sums(res, model, tol=1e-4):
    assert abs(res.components_sum - res.total) < tol
    torch.testing.assert_close(res.heads.sum(1) + res.attn_bias, res.attn, atol=tol, rtol=0)
    torch.testing.assert_close(res.neurons.sum(1) + res.mlp_bias, res.mlp, atol=tol, rtol=0)
    if model.cfg.logit_softcap is None:
        assert abs(res.total - res.logit_diff) < tol
    else:  # the components sum to the logit difference before the softcap
        assert abs(res.total - res.logit_diff) > 1e-3


def test_components_sum_to_total(tiny):
    res = direct_logit_attribution(tiny, PROMPT, " Paris", " reliability")
    check_sums(res, tiny)
    assert res.heads.shape == (tiny.cfg.n_layers, tiny.cfg.n_heads)
    assert res.neurons.shape == (tiny.cfg.n_layers, tiny.cfg.d_mlp)


def test_single_logit_and_position(tiny):
    res = direct_logit_attribution(tiny, PROMPT, " Paris", position=2)
    check_sums(res, tiny)
    assert res.position == 2 and res.answer.wrong is None


def test_bad_inputs(tiny):
    with pytest.raises(PromptError, match="not a single token"):
        direct_logit_attribution(tiny, PROMPT, " Parisxyzzyqq")
    with pytest.raises(OutOfRangeError, match="position 99"):
        direct_logit_attribution(tiny, PROMPT, " Paris", position=99)


@pytest.mark.gemma
def test_gemma_sums(gemma):
    res = direct_logit_attribution(gemma, PROMPT, " Paris", " Rome")
    check_sums(res, gemma)
    assert res.logit_diff > 2  # Gemma prefers Paris
