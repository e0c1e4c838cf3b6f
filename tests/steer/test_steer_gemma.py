"""Steering the real Gemma 3 270M with a random SAE at blocks.6.hook_resid_post (|resid| ~4,000 there,
BOS ~55,000): dose 0 is the unsteered model exactly, a large dose moves the next-token distribution."""

from __future__ import annotations

import pytest
import torch

from mechscope.steer.feature import steer_latent
from mechscope.steer.latent import LatentClamp, add_intervention
from tests.steer.saes import make_sae

HOOK = "blocks.6.hook_resid_post"
PROMPT = "The capital of France is"


@pytest.mark.gemma
def test_add_on_gemma(gemma):
    sae = make_sae(gemma, hook=HOOK, width=256, k=16)
    res = steer_latent(gemma, sae, 5, PROMPT, [0.0, 400.0], mode="add", generate=8)
    n = gemma.to_tokens(PROMPT).input_ids.shape[1]
    clean = gemma(PROMPT)
    torch.testing.assert_close(gemma(PROMPT, interventions=[add_intervention(sae, 5, 0.0, range(1, n))]), clean,
                               rtol=0, atol=0)  # fmt: skip
    assert res.doses[0].kl == 0.0 and res.doses[0].text == gemma.generate(PROMPT, 8)
    assert res.doses[1].kl > 1.0 and res.doses[1].text != res.doses[0].text
    # clamping a latent to its own value at one position keeps the logits (the error term is kept)
    f = sae.encode(gemma.run_with_cache(PROMPT, names=[HOOK])[1][HOOK][0]).detach()
    pos = n - 1
    latent = int(f[pos].argmax())
    with gemma.hooks(LatentClamp(sae, latent, f[pos, latent].item(), positions=[pos]).hooks()):
        torch.testing.assert_close(gemma(PROMPT), clean, rtol=0, atol=0)
