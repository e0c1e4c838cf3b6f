"""Random SAEs for steering tests (seeded, tiny)."""

from __future__ import annotations

import torch

from mechscope.sae.artifact import build
from mechscope.sae.config import SAEConfig

HOOK = "blocks.1.hook_resid_post"


def make_sae(model, arch: str = "topk", hook: str = HOOK, target: str | None = None, width: int = 32, k: int = 4,
             seed: int = 0, **cfg):
    """An SAE (or, with ``target``, a transcoder) on ``model`` with seeded random weights."""
    d = model.cfg.d_model
    transcoder = target is not None and target != hook
    sae = build(SAEConfig(arch=arch, d_in=d, width=width, k=k, transcoder=transcoder, **cfg),
                info={"hook": hook, "target": target or hook, "fingerprint": model.fingerprint, "model": model.name})
    sae.init_weights(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        sae.b_dec.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed + 1))
    return sae.eval()
