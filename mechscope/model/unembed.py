"""The model's own output head as one object: final norm, unembedding, logit softcap.

Every analysis that reads the residual stream in vocabulary space goes through it: the logit and tuned
lens, direct logit attribution, an SAE latent's logit table, a steering vector's promoted tokens. Each
step is the model's own module or formula, so ``model.unembed(resid_post_of_last_block)`` equals the
logits of a plain Hugging Face forward.

    >>> head = model.unembed                                    # doctest: +SKIP
    >>> logits = head(cache["blocks.17.hook_resid_post"])       # norm → W_U (+ bias) → softcap
    >>> head.logits(head.norm(resid))                           # the same, in two steps
    >>> head.W_U.shape                                          # [d_model, d_vocab]
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn


class Unembed:
    """Final norm + unembedding (+ bias) + softcap of one model. Holds references, copies nothing."""

    def __init__(self, final_norm: nn.Module, unembed: nn.Linear, softcap: float | None):
        self.final_norm = final_norm
        self.module = unembed
        self.softcap = softcap
        """Final-logit softcap ``c`` (logits = c·tanh(x/c)), or None."""

    @property
    def weight(self) -> Float[Tensor, "d_vocab d_model"]:
        """The unembedding matrix as stored (rows are vocabulary entries), detached."""
        return self.module.weight.detach()

    @property
    def bias(self) -> Float[Tensor, "d_vocab"] | None:
        bias = getattr(self.module, "bias", None)
        return bias.detach() if bias is not None else None

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.module.weight.T

    @property
    def d_vocab(self) -> int:
        return int(self.module.weight.shape[0])

    def norm(self, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """The final norm, exactly as the model's forward applies it."""
        return self.final_norm(resid)

    def cap(self, logits: Float[Tensor, "... d_vocab"]) -> Float[Tensor, "... d_vocab"]:
        """The softcap (identity without one), the three steps HF uses, so results match bit for bit."""
        if self.softcap is None:
            return logits
        return torch.tanh(logits / self.softcap) * self.softcap

    def logits(self, normed: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
        """Unembedding (+ bias) and softcap of an already normalised residual."""
        return self.cap(self.module(normed))

    def __call__(self, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
        """Logits of a residual-stream vector: norm, unembedding, softcap."""
        return self.logits(self.norm(resid))

    def __repr__(self) -> str:
        return f"Unembed(d_vocab={self.d_vocab}, softcap={self.softcap})"
