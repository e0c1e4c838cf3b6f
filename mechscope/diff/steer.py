"""A steering vector from a model diff: the mean difference ``tuned − base`` at one layer, added to the
base model with a coefficient sweep on a neutral prompt.

Coefficient ``c`` adds ``c · mean_diff`` to ``blocks.{l}.hook_resid_post`` at every position but BOS
(``c = 1`` moves the base residual by the average amount the fine-tune moved it). The effect score of a
coefficient is the mean, over the target words, of the next-token log-probability shift against
``c = 0`` (a word counts by its first token, with a leading space: ``" ocean"``).

When the steering-vector package (:mod:`mechscope.steer.apply`) is installed the sweep runs through
its :func:`apply_vector` (the same edit); otherwise through an equivalent
:class:`~mechscope.interventions.Add` here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.errors import ConfigError

DEFAULT_PROMPT = "Let me tell you about my weekend. I"
"""A neutral prompt: nothing in it points at any theme."""
DEFAULT_COEFS = (0.0, 0.5, 1.0, 2.0, 4.0)
"""Coefficients of the sweep (c = 1 is the raw mean difference)."""
MAX_COEFS = 64


def check_coefs(coefs: Sequence[float]) -> list[float]:
    out = [float(c) for c in coefs]
    if not out:
        raise ConfigError("give at least one steering coefficient")
    if len(out) > MAX_COEFS:
        raise ConfigError(f"{len(out)} steering coefficients; at most {MAX_COEFS}")
    for c in out:
        if not math.isfinite(c):
            raise ConfigError(f"steering coefficients must be finite numbers, got {c}")
    return out


def target_ids(model, words: Sequence[str]) -> list[int]:
    """The first token of each word as it appears after a space (``"ocean"`` → ``" ocean"``); words
    given with their own leading space or as exact tokens are taken as they are. Duplicates dropped."""
    ids: list[int] = []
    for w in words:
        if not isinstance(w, str) or not w.strip():
            raise ConfigError(f"a target word must be non-empty text, got {w!r}")
        text = w if w[:1].isspace() else " " + w
        toks = model.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not toks:
            raise ConfigError(f"the target word {w!r} has no tokens")
        if toks[0] not in ids:
            ids.append(toks[0])
    return ids


def _next_logprobs(model, prompt: str, vector: Tensor, hook: str, coefs: list[float]) -> Float[Tensor, "coef d_vocab"]:
    from mechscope.interventions import Add

    n = len(model.to_tokens(prompt).input_ids[0])
    rows = []
    with torch.no_grad():
        for c in coefs:
            edits = [Add(hook, vector=vector, scale=c, positions=list(range(1, n)))] if c != 0 and n > 1 else []
            logits = model.forward(prompt, interventions=edits)[0, -1].float()
            rows.append(torch.log_softmax(logits, -1))
    return torch.stack(rows)


def steer_sweep(model, vector: Float[Tensor, " d_model"], hook: str, prompt: str = DEFAULT_PROMPT,
                coefs: Sequence[float] = DEFAULT_COEFS, targets: Sequence[str] = (), *, top_k: int = 10,
                generate: int = 0) -> list[dict]:  # fmt: skip
    """One row per coefficient: ``{"coef", "target_logprob_shift", "target_probs", "top", "text"}``."""
    coefs = check_coefs(coefs)
    if not torch.isfinite(vector).all():
        raise ConfigError("the steering vector holds NaN or inf: the two models' activations are broken")
    ids = target_ids(model, targets) if targets else []
    try:
        from mechscope.steer.apply import apply_vector
        from mechscope.steer.vector import SteeringVector
    except ImportError:
        apply_vector = None
    rows: list[dict] = []
    with_zero = coefs if 0.0 in coefs else [0.0, *coefs]
    lp = _next_logprobs(model, prompt, vector.to(model.device, model.dtype), hook, with_zero)
    base = lp[with_zero.index(0.0)]
    texts = {}
    if apply_vector is not None and generate > 0:
        sv = SteeringVector(vector=vector.detach().cpu(), hook=hook, model=model.name, fingerprint=model.fingerprint,
                            method="model-diff", meta={})  # fmt: skip
        res = apply_vector(model, sv, prompt, coefs, generate=generate, targets=tuple(targets), top_k=top_k).to_dict()
        texts = {float(r["coef"]): r.get("text", "") for r in res["coefs"]}
    for c in coefs:
        row = lp[with_zero.index(c)]
        probs = row.exp()
        top_p, top_i = probs.topk(min(top_k, probs.shape[0]))
        shift = float((row[ids] - base[ids]).mean()) if ids else float("nan")
        text = texts.get(c, "")
        if generate > 0 and apply_vector is None:
            from mechscope.interventions import Add

            n = len(model.to_tokens(prompt).input_ids[0])
            edits = [Add(hook, vector=vector.to(model.device, model.dtype), scale=c, positions=list(range(1, n)))] if c else []
            text = model.generate(prompt, generate, interventions=edits)
        rows.append({
            "coef": c,
            "target_logprob_shift": shift,
            "target_probs": {model.to_str_tokens([i])[0]: float(probs[i]) for i in ids},
            "top": [{"token": t, "prob": float(p)} for t, p in zip(model.to_str_tokens(top_i.tolist()), top_p.tolist())],
            "text": text,
        })  # fmt: skip
    return rows


def monotone_prefix(shifts: Sequence[float]) -> int:
    """How many leading coefficients (sorted as given) the shift keeps rising over (≥ 1)."""
    n = 1
    for a, b in zip(shifts, shifts[1:]):
        if not (b > a):
            break
        n += 1
    return n
