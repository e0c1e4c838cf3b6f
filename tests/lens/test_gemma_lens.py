"""The lens on the real Gemma 3 270M: the output row is the model's distribution; the walkthrough finds
a word of doubt."""

from __future__ import annotations

import pytest
import torch

from mechscope.lens.logit import logit_lens
from mechscope.lens.rows import lens_rows
from mechscope.tour.lens import DOUBT_WORDS, PNG_NAME, PROMPT, tour

pytestmark = pytest.mark.gemma


def test_output_row_is_the_model_distribution_and_rows_match_a_dense_reference(gemma):
    res = logit_lens(gemma, PROMPT, top_k=50, targets=" questionable")
    logp = gemma(PROMPT)[0].float().log_softmax(-1)  # [pos, vocab]
    top = logp.topk(50, -1)
    assert torch.equal(res.top_ids[-1], top.indices)
    torch.testing.assert_close(res.top_probs[-1], top.values.exp(), atol=1e-5, rtol=0)
    torch.testing.assert_close(res.entropy[-1], -(logp.exp() * logp).sum(-1), atol=1e-4, rtol=0)
    _, cache = gemma.run_with_cache(PROMPT, names=[r.hook for r in lens_rows(18)])
    for r in (0, 9, 17):  # embedding, a middle row, the last before the output
        lp = gemma.unembed(cache[res.rows[r].hook][0]).float().log_softmax(-1)
        kl = (logp.exp() * (logp - lp)).sum(-1)
        torch.testing.assert_close(res.kl[r], kl, atol=1e-3, rtol=1e-4)
        assert torch.equal(res.top_ids[r, :, :10], lp.topk(10, -1).indices)
    assert res.target_ranks[-1, -1, 0] == 1 + (logp[-1] > logp[-1, gemma.token_id(" questionable")]).sum()


def test_tour_finds_where_doubt_enters(gemma, tmp_path):
    import re

    lines = tour(gemma, tmp_path)
    text = "\n".join(lines)
    assert PROMPT in text and "L17" in text
    found = re.search(r"a word of doubt first enters the top-10 at L(\d+) .*: '(\w+)', rank (\d+)", text)
    assert found and 0 <= int(found.group(1)) <= 17 and found.group(2).lower() in DOUBT_WORDS
    assert "in the model's output 'questionable' is rank" in text
    assert (tmp_path / PNG_NAME).stat().st_size > 50_000
