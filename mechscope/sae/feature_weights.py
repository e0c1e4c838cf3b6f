"""What an SAE latent is, read from weights alone: its logit effect, its nearest latents, and which
latents fire on one token of a prompt (``mechscope sae top``).

- **Logits**: the decoder direction through the unembedding, ``W_dec[n] @ W_U`` — the direct effect on
  each logit of adding the latent's output direction to the residual stream, *without* the final norm
  (which depends on the rest of the residual) or the softcap. Only for latents that write a
  ``d_model``-wide hook (residual stream, attention / MLP output); ``None`` otherwise.
- **Similar latents**: cosine similarity of decoder rows.

Both take a handful of latents at once and cost milliseconds (one ``[n, d_model] @ [d_model, d_vocab]``
product), so they are computed on demand rather than cached: a table for every latent of a 16k SAE on
Gemma's 262k vocabulary would be ~2.7 TFLOP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechscope.errors import OutOfRangeError


def check_latent(latent: int, width: int) -> int:
    """``latent`` if it indexes one of ``width`` latents, else a one-line :class:`OutOfRangeError`."""
    if isinstance(latent, bool) or not isinstance(latent, int) or not 0 <= latent < width:
        raise OutOfRangeError(f"latent {latent} out of range: the SAE has {width} latents (0..{width - 1})")
    return latent


def writes_residual(model, sae) -> bool:
    """True when the SAE's decoder writes a ``d_model``-wide hook, so ``W_dec @ W_U`` means something."""
    return model.spec(sae.target).last_dim == "d_model" and sae.cfg.out_dim == model.cfg.d_model


@torch.no_grad()
def decoder_logits(model, sae, latents: Int[Tensor, " n"]) -> Float[Tensor, "n d_vocab"] | None:
    """``W_dec[latents] @ W_U`` (no final norm, no softcap), or None when the SAE does not write the residual."""
    if not writes_residual(model, sae):
        return None
    W_U = model.unembed.W_U.detach()
    rows = sae.W_dec.detach()[latents.to(sae.W_dec.device)].to(W_U.device, torch.float32)
    return (rows @ W_U.float()).cpu()


def logit_lists(model, sae, latent: int, k: int = 10) -> dict:
    """``{"top_logits": [{"token", "id", "logit"}], "bottom_logits": [...]}`` of one latent (empty lists
    and a ``logits_note`` when the SAE does not write the residual stream)."""
    logits = decoder_logits(model, sae, torch.tensor([latent]))
    if logits is None:
        return {"top_logits": [], "bottom_logits": [],
                "logits_note": f"{sae.target} is not a d_model-wide hook: no direct logit effect"}  # fmt: skip
    row = logits[0]
    k = min(k, row.shape[0])
    out = {}
    for name, largest in (("top_logits", True), ("bottom_logits", False)):
        vals, ids = row.topk(k, largest=largest)
        toks = model.to_str_tokens(ids.tolist())
        out[name] = [{"token": t, "id": int(i), "logit": float(v)} for t, i, v in zip(toks, ids, vals)]
    return out


@torch.no_grad()
def similar_latents(sae, latents: Int[Tensor, " n"], k: int = 10) -> tuple[Float[Tensor, "n k"], Int[Tensor, "n k"]]:
    """The ``k`` latents whose decoder rows have the largest cosine with each of ``latents`` (itself excluded)."""
    W = sae.W_dec.detach().float()
    Wn = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    latents = latents.to(W.device)
    cos = Wn[latents] @ Wn.T  # [n, d_sae]
    cos[torch.arange(len(latents), device=W.device), latents] = float("-inf")
    k = min(k, W.shape[0] - 1)
    vals, idx = cos.topk(k, dim=1)
    return vals.cpu(), idx.cpu()


def similar_list(sae, latent: int, k: int = 10) -> list[dict]:
    vals, idx = similar_latents(sae, torch.tensor([latent]), k)
    return [{"latent": int(i), "cosine": float(v)} for i, v in zip(idx[0], vals[0])]


@dataclass
class TopLatents:
    """The latents active on one token of a prompt, strongest first."""

    hook: str
    tokens: list[str]
    position: int
    latents: Int[Tensor, " n"]
    activations: Float[Tensor, " n"]
    active: int
    """Latents active at the position (the list may be cut to ``k``)."""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"hook": self.hook, "tokens": self.tokens, "position": self.position, "active": self.active,
                "latents": [{"latent": int(i), "activation": float(v)} for i, v in zip(self.latents, self.activations)],
                "seconds": round(self.seconds, 3)}  # fmt: skip


@torch.no_grad()
def top_latents(model, sae, prompt: str, position: int = -1, k: int = 10) -> TopLatents:
    """Encode the SAE's input hook at ``position`` of ``prompt`` (BOS prepended) and list the ``k``
    strongest active latents (fewer when fewer fire)."""
    from mechscope.errors import ConfigError

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    t0 = time.perf_counter()
    hook = model.spec(sae.hook).name
    ids = model.to_tokens(prompt).input_ids[0]
    n = ids.shape[0]
    if isinstance(position, bool) or not isinstance(position, int) or not -n <= position < n:
        raise OutOfRangeError(f"position {position} out of range: the prompt has {n} tokens ({-n}..{n - 1})")
    pos = position % n
    x = model.collect(ids[None], [hook], prepend_bos=False)[hook][0, pos]
    f = sae.encode(x.to(sae.W_enc.device, torch.float32))  # [d_sae]
    active = int((f > 0).sum())
    vals, idx = f.topk(min(k, active)) if active else (f[:0], torch.zeros(0, dtype=torch.long))
    return TopLatents(hook, model.to_str_tokens(ids.tolist()), pos, idx.cpu(), vals.cpu(), active,
                      time.perf_counter() - t0)  # fmt: skip
