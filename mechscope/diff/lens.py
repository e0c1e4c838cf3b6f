"""The logit lens of a *difference*: which tokens a direction ``Δ`` promotes.

The ordinary logit lens reads a residual ``x`` as ``W_U · norm(x)``. A difference of residuals is not a
residual: normalising ``Δ`` by its own RMS would only rescale it (RMSNorm) or shift every logit by the
same amount (LayerNorm's centring), and adding the norm's bias or the softcap would mix in what the
base model already says. What ``Δ`` does to the logits, to first order, is to move the normalised
residual by ``g ⊙ Δ / rms(x)``: the final norm's elementwise gain ``g`` and the RMS of the residual it
is added to. So we compute::

    lens(Δ, l) = W_U · (g ⊙ Δ) / rms_base(l)          # [d_vocab]; no bias, no softcap, no re-normalising

``rms_base(l)`` is the base model's mean residual RMS at layer ``l`` (BOS left out), so the numbers
read as "logits added when Δ is added to a typical layer-l residual, as the logit lens of layer l sees
it". The gain ``g`` is read off the norm module itself by probing it with ``±1`` alternating vectors
(unit RMS, mean zero): ``g ⊙ p = (norm(s·p) − norm(−s·p)) / 2`` for RMSNorm (Gemma's ``1 + w`` form
too) and LayerNorm alike, with no access to the module's parameters.

**Best layer** (:func:`best_layer`): the layer whose lens is the most *peaked*: the largest mean
z-score (``(logit − mean) / std`` over the vocabulary) of its top-20 tokens. A difference that carries a
theme promotes a few tokens far above the rest; one spread over many unrelated directions does not.
The last layer is a candidate like every other.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

TOP_N = 20
"""Tokens per layer that the best-layer score averages over (and that ``promoted_tokens`` lists)."""


def norm_gain(model) -> Float[Tensor, " d_model"]:
    """The final norm's elementwise gain ``g`` (see the module docstring), probed, not read."""
    d = model.cfg.d_model
    p = torch.ones(d, dtype=model.dtype, device=model.device)
    p[1::2] = -1.0
    if d % 2:  # an odd width cannot be zero-mean with ±1: leave the last entry out
        p[-1] = 0.0
    s = 1e3  # large enough that the norm's eps does not matter
    with torch.no_grad():
        gp = (model.unembed.norm(s * p[None]) - model.unembed.norm(-s * p[None]))[0] / 2
    gain = torch.where(p != 0, gp / p.where(p != 0, torch.ones_like(p)), torch.zeros_like(p))
    if d % 2:
        gain[-1] = gain[:-1].mean()  # best guess for the probe's blind spot
    return gain.float()


def lens_logits(model, vectors: Float[Tensor, "layer d_model"], rms: Float[Tensor, " layer"],
                gain: Float[Tensor, " d_model"] | None = None) -> Float[Tensor, "layer d_vocab"]:  # fmt: skip
    """``W_U · (g ⊙ Δ_l) / rms_l`` for every row ``Δ_l`` of ``vectors``."""
    g = norm_gain(model) if gain is None else gain
    W = model.unembed.weight.float()  # [d_vocab, d_model]
    v = vectors.float().to(W.device) * g.to(W.device) / rms.float().to(W.device).clamp_min(1e-12)[:, None]
    return v @ W.T


def peak_scores(logits: Float[Tensor, "layer d_vocab"], top_n: int = TOP_N) -> Float[Tensor, " layer"]:
    """Mean z-score of each row's ``top_n`` logits (the best-layer score)."""
    mu = logits.mean(-1, keepdim=True)
    sd = logits.std(-1, keepdim=True).clamp_min(1e-12)
    z = (logits - mu) / sd
    return z.topk(min(top_n, z.shape[-1]), dim=-1).values.mean(-1)


def best_layer(layers: list[int], logits: Float[Tensor, "layer d_vocab"], top_n: int = TOP_N) -> int:
    """The layer (from ``layers``, rows of ``logits``) with the highest :func:`peak_scores`."""
    scores = peak_scores(logits, top_n)
    scores = torch.nan_to_num(scores, nan=-float("inf"))
    return layers[int(scores.argmax())]


def top_tokens(model, row: Float[Tensor, " d_vocab"], n: int = TOP_N) -> list[dict]:
    """``[{"token": str, "id": int, "logit": float}]`` for the ``n`` largest entries of ``row``."""
    vals, ids = row.topk(min(n, row.shape[-1]))
    toks = model.to_str_tokens(ids.tolist())
    return [{"token": t, "id": int(i), "logit": float(v)} for t, i, v in zip(toks, ids.tolist(), vals.tolist())]
