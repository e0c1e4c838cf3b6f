"""The built-in fact set is answered top-1 by the embedded Gemma 3 270M, and tracing Michael Jordan finds
the subject's MLPs and the last token's late attention (Meng et al.'s picture)."""

from __future__ import annotations

import pytest
import torch

from mechscope.attribution.facts import FACTS
from mechscope.attribution.tracing import TraceConfig, causal_trace

pytestmark = pytest.mark.gemma


def test_every_fact_is_top1(gemma):
    assert len(FACTS) >= 30
    with torch.no_grad():
        logits = gemma([f.prompt for f in FACTS], padding_side="left")[:, -1]
    wrong = [f for f, row in zip(FACTS, logits) if int(row.argmax()) != gemma.token_id(f.answer)]
    assert not wrong, wrong
    for f in FACTS:
        assert f.subject in f.prompt


def test_michael_jordan(gemma):
    res = causal_trace(gemma, "Michael Jordan plays the sport of", "Michael Jordan", " basketball",
                       TraceConfig(samples=2), kinds=("mlp",), positions=[2])  # fmt: skip
    assert res.clean_prob > 0.5 and res.corrupted_prob < 0.2
    assert float(res.effects["mlp"][:8, 2].max()) > 0.2  # early-middle MLPs at the last subject token
