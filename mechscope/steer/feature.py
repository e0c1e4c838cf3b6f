"""Steering with one SAE latent: a dose sweep of ``add`` or ``clamp`` on one prompt.

For each dose ``V`` the prompt runs once with the edit (:mod:`mechscope.steer.latent`) for the
next-token distribution after its last token, and, with ``generate > 0``, is continued greedily
(deterministic: ``do_sample=False``, the same text every run) with the edit active on every generated
token too. The unsteered run gives the reference distribution; each dose reports its KL from it.

    >>> from mechscope import sae as saes
    >>> from mechscope.steer import steer_latent
    >>> s = saes.load("runs/sae-l6", model)                                              # doctest: +SKIP
    >>> res = steer_latent(model, s, 7, "I think that", values=[0, 50, 100], mode="add")  # doctest: +SKIP
    >>> res.doses[2].text                                                                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.errors import ConfigError, InterventionError
from mechscope.steer.latent import (FIRST_POSITION, LatentClamp, add_intervention, check_latent, check_steerable,
                                    steered_positions)  # fmt: skip

Mode = Literal["add", "clamp"]
MODES: tuple[str, ...] = ("add", "clamp")
MAX_DOSES = 64
"""Most doses in one sweep."""
TRACKED = 8
"""Tokens followed across doses: the likeliest of the unsteered and every dose's top 3."""


@dataclass
class Dose:
    """The model under one dose of steering."""

    value: float
    top: list[dict]
    """Next-token top-k after the prompt: ``{"token", "id", "prob"}``, most likely first."""
    kl: float
    """KL(unsteered ‖ steered) of the next-token distribution, in nats."""
    text: str
    """The greedy continuation ("" when nothing was generated)."""

    def to_dict(self) -> dict:
        return {"value": self.value, "top": self.top, "kl": self.kl, "text": self.text}


@dataclass
class SteerResult:
    """A dose sweep of one latent on one prompt."""

    model: str
    sae: str
    """The SAE's label (``topk-4096-k32``)."""
    hook: str
    """Where the SAE reads its input."""
    target: str
    """Where the edit lands (== hook, except for transcoders)."""
    latent: int
    mode: str
    positions: str
    """Which positions were edited, in words."""
    tokens: list[str]
    """The prompt's tokens (decoded strings)."""
    activations: list[float]
    """The latent's unsteered activation f_N(x) at each prompt position (BOS included)."""
    clean_top: list[dict]
    doses: list[Dose]
    tracked: list[dict]
    """Tokens followed across doses: ``{"token", "id", "clean", "probs"}`` (``probs`` one per dose)."""
    generate: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "sae": self.sae, "hook": self.hook, "target": self.target, "latent": self.latent,
            "mode": self.mode, "positions": self.positions, "tokens": self.tokens, "activations": self.activations,
            "clean": {"top": self.clean_top}, "generate": self.generate, "greedy": True,
            "doses": [d.to_dict() for d in self.doses], "tracked": self.tracked, "seconds": round(self.seconds, 3),
            **self.extra,
        }  # fmt: skip


def check_values(values: Sequence[float]) -> list[float]:
    """Doses as finite floats (1 to :data:`MAX_DOSES` of them), else one line."""
    if isinstance(values, (int, float)):
        values = [values]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"a steering dose must be a finite number, got {v!r:.40}")
        out.append(float(v))
    if not 1 <= len(out) <= MAX_DOSES:
        raise ConfigError(f"give 1 to {MAX_DOSES} doses, got {len(out)}")
    return out


def top_tokens(model, probs: Float[Tensor, " d_vocab"], k: int) -> list[dict]:
    top = probs.topk(k)
    ids = top.indices.tolist()
    return [{"token": t, "id": i, "prob": p} for t, i, p in zip(model.to_str_tokens(ids), ids, top.values.tolist())]


def kl_div(p_log: Float[Tensor, " d_vocab"], q_log: Float[Tensor, " d_vocab"]) -> float:
    """KL(p ‖ q) from log-probabilities, in nats (float64)."""
    p_log, q_log = p_log.double(), q_log.double()
    return float((p_log.exp() * (p_log - q_log)).sum().clamp_min(0.0))


def tracked_tokens(model, clean_log: Float[Tensor, " d_vocab"], logs: list[Tensor], n: int = TRACKED) -> list[dict]:
    """The ``n`` tokens with the highest probability anywhere among the unsteered top 3 and each dose's
    top 3, with their probability at every dose (the dose-response curves)."""
    probs = torch.stack([clean_log, *logs]).exp()  # [1 + doses, d_vocab]
    candidates = probs.topk(min(3, probs.shape[1]), dim=1).indices.flatten().unique()
    best = probs[:, candidates].max(0).values
    ids = candidates[best.argsort(descending=True)[:n]].tolist()
    return [{"token": t, "id": i, "clean": float(probs[0, i]), "probs": probs[1:, i].tolist()}
            for t, i in zip(model.to_str_tokens(ids), ids)]  # fmt: skip


def describe_positions(positions: Sequence[int] | None, first: int) -> str:
    if positions is not None:
        return "positions " + ", ".join(map(str, positions))
    return "every position but BOS (1..end, generated tokens included)" if first >= 1 else \
        "every position, BOS included (generated tokens too)"  # fmt: skip


@torch.no_grad()
def steer_latent(model, sae, latent: int, prompt: str, values: Sequence[float], mode: Mode = "add", *,
                 generate: int = 20, top_k: int = 10, include_bos: bool = False,
                 positions: Sequence[int] | None = None, interventions: Sequence = (), progress=None) -> SteerResult:  # fmt: skip
    """Steer ``model`` with latent ``latent`` of ``sae`` at each dose in ``values``.

    mode: ``add`` (``y + V·W_dec[N]``) or ``clamp`` (``f_N := V`` in a spliced SAE, error term kept).
    Edits land on every position but BOS (``include_bos`` adds it; ``positions`` names absolute
    positions instead). ``interventions`` are applied with every run, the unsteered one included.
    ``generate`` tokens are continued greedily. The SAE is moved to the model's device. ``progress``,
    if given, is called as ``progress(done, total)`` after each dose.
    """
    from mechscope.sae.artifact import check_for_model

    start = time.perf_counter()
    if mode not in MODES:
        raise ConfigError(f"unknown steering mode {mode!r}: use add or clamp")
    values = check_values(values)
    check_latent(sae, latent)
    if isinstance(generate, bool) or not isinstance(generate, int) or generate < 0:
        raise ConfigError(f"--generate must be ≥ 0, got {generate!r}")
    if not 1 <= top_k <= model.cfg.d_vocab:
        raise ConfigError(f"--top-k must be between 1 and the vocabulary size {model.cfg.d_vocab}")
    check_for_model(sae, model)
    check_steerable(model, sae)
    sae.to(model.device)
    ids = model.to_tokens(prompt).input_ids[0]
    n = len(ids)
    if n + generate > model.cfg.n_ctx:
        raise ConfigError(f"--generate {generate} after {n} prompt tokens passes the model's context window of "
                          f"{model.cfg.n_ctx} tokens: generate at most {max(0, model.cfg.n_ctx - n)}")  # fmt: skip
    first = 0 if include_bos else FIRST_POSITION
    where = steered_positions(n + generate, positions, first)
    extra = list(interventions)

    with model.intervene(extra):
        logits, cache = model.run_with_cache(prompt, names=[sae.hook])
        acts = sae.encode(cache[sae.hook][0].to(sae.W_enc.dtype))[:, latent]  # [pos]
    clean_log = _last_log_probs(logits, "the unsteered run")
    doses, logs = [], []
    for v in values:
        edits, hooks, clamp = extra, [], None
        if mode == "add":
            edits = [*extra, add_intervention(sae, latent, v, where)]
        else:
            clamp = LatentClamp(sae, latent, v, positions=positions, first=first)
            hooks = clamp.hooks()
        with model.intervene(edits), model.hooks(hooks):
            log = _last_log_probs(model(prompt), f"dose {v:g}")
            text = ""
            if generate:
                if clamp is not None:
                    clamp.reset()
                text = model.generate(prompt, generate)
        doses.append(Dose(v, top_tokens(model, log.exp(), top_k), kl_div(clean_log, log), text))
        logs.append(log)
        if progress is not None:
            progress(len(doses), len(values))
    return SteerResult(
        model=model.name, sae=sae.cfg.label(), hook=sae.hook, target=sae.target, latent=latent, mode=mode,
        positions=describe_positions(positions, first), tokens=model.to_str_tokens(ids), activations=acts.tolist(),
        clean_top=top_tokens(model, clean_log.exp(), top_k), doses=doses,
        tracked=tracked_tokens(model, clean_log, logs), generate=generate,
        seconds=time.perf_counter() - start,
    )  # fmt: skip


def _last_log_probs(logits: Float[Tensor, "batch pos d_vocab"], what: str) -> Float[Tensor, " d_vocab"]:
    last = logits[0, -1].float()
    if not bool(torch.isfinite(last).all()):
        raise InterventionError(f"{what} made the model's logits NaN or infinite: use a smaller steering value")
    return last.log_softmax(-1)

