"""Apply a steering vector with a sweep of coefficients, and score the effect on target words.

Coefficient ``c`` adds ``c·v`` (the vector exactly as made, no normalisation: c = 1 adds the raw
difference of means) at the vector's hook, at every position but BOS (``include_bos`` adds position 0),
generated tokens included. The edit is an :class:`~mechscope.model.interventions.Add` (one per row for
a per-position vector: row ``i`` at absolute position ``i``; positions past its last row get the mean of
its rows but BOS), bound once per coefficient and active for that coefficient's forward and greedy
generation.

Coefficient 0 is always run, as the reference, even if not listed (it is the unsteered model exactly).
The **target score**: each target word becomes the text scored; a leading space is added unless the word
already starts with whitespace or the prompt ends with whitespace (the next word after
``"... is"`` is the token ``" questionable"``, not ``"questionable"``). Only that text's **first
token** is scored: its log-probability at the next position after the prompt. A coefficient's
``target_logprob_shift`` is the mean over targets of ``log p_c(token) - log p_0(token)`` (nats);
each target's rank (1 = the top next token) is reported too.

    >>> res = apply_vector(model, v, "The claim that the moon landing was faked is", [0, 1, 2],
    ...                    targets=["questionable"], generate=12)                          # doctest: +SKIP
    >>> [c.target_logprob_shift for c in res.coefs]                                       # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.errors import ConfigError
from mechscope.model.interventions import Add
from mechscope.steer.feature import _last_log_probs, check_values, describe_positions, kl_div, top_tokens, tracked_tokens
from mechscope.steer.latent import FIRST_POSITION, steered_positions
from mechscope.steer.vector import SteeringVector

MAX_TARGETS = 32
"""Most target words scored in one run."""


@dataclass
class CoefResult:
    """The model under one coefficient."""

    coef: float
    top: list[dict]
    """Next-token top-k after the prompt: ``{"token", "id", "prob"}``, most likely first."""
    target_logprob_shift: float | None
    """Mean over targets of the scored token's log-prob change against coefficient 0 (None without targets)."""
    target_logprobs: list[float]
    """Each target's scored log-prob at this coefficient."""
    target_ranks: list[int]
    """Each target's rank among next tokens (1 = most likely)."""
    kl: float
    """KL(coefficient 0 ‖ this) of the next-token distribution, nats."""
    text: str
    """The greedy continuation ("" without --generate)."""

    def to_dict(self) -> dict:
        return {"coef": self.coef, "top": self.top, "target_logprob_shift": self.target_logprob_shift,
                "target_logprobs": self.target_logprobs, "target_ranks": self.target_ranks, "kl": self.kl,
                "text": self.text}  # fmt: skip


@dataclass
class VectorResult:
    """A coefficient sweep of one steering vector on one prompt."""

    model: str
    hook: str
    method: str
    vector_norm: float
    prompt: str
    tokens: list[str]
    """The prompt's tokens (decoded strings), BOS first."""
    positions: str
    """Which positions were edited, in words."""
    targets: list[dict]
    """``{"word", "token", "id"}``: each target and the first token scored for it."""
    reference: CoefResult
    """Coefficient 0 (the unsteered model)."""
    coefs: list[CoefResult]
    """One per requested coefficient, in the order given."""
    tracked: list[dict]
    """Tokens followed across coefficients: ``{"token", "id", "clean", "probs"}`` (``clean`` at c = 0,
    ``probs`` one per entry of ``coefs``): the likeliest of c = 0's and every coefficient's top 3."""
    generate: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "hook": self.hook, "method": self.method, "vector_norm": self.vector_norm,
            "prompt": self.prompt, "tokens": self.tokens, "positions": self.positions, "targets": self.targets,
            "generate": self.generate, "greedy": True, "reference": self.reference.to_dict(),
            "coefs": [c.to_dict() for c in self.coefs], "tracked": self.tracked, "seconds": round(self.seconds, 3), **self.extra,
        }  # fmt: skip


def target_tokens(model, prompt: str, targets: Sequence[str]) -> list[dict]:
    """The token scored for each target word (see the module docstring): ``{"word", "token", "id"}``."""
    if isinstance(targets, str):
        targets = [targets]
    if len(targets) > MAX_TARGETS:
        raise ConfigError(f"give at most {MAX_TARGETS} target words, got {len(targets)}")
    out = []
    bos = model.tokenizer.bos_token_id
    for word in targets:
        if not isinstance(word, str) or not word.strip():
            raise ConfigError(f"a target word must be some text, got {word!r:.40}")
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"the target {word!r:.40} is not valid UTF-8 text: pass a word") from None
        text = word if word[0].isspace() or prompt[-1:].isspace() else " " + word
        ids = [i for i in model.tokenizer(text, add_special_tokens=False)["input_ids"] if i != bos]
        if not ids:
            raise ConfigError(f"the target {word!r:.40} has no tokens for {model.name}")
        out.append({"word": word, "token": model.to_str_tokens([ids[0]])[0], "id": int(ids[0])})
    return out


def _coefficients(coefs: Sequence[float]) -> list[float]:
    if isinstance(coefs, (int, float)):
        coefs = [coefs]
    for c in coefs:
        if isinstance(c, (int, float)) and not isinstance(c, bool) and not math.isfinite(c):
            raise ConfigError(f"a steering coefficient must be a finite number, got {c}")
    return check_values(coefs)


def vector_edits(vector: SteeringVector, hook: str, coef: float, where: Sequence[int]) -> list[Add]:
    """The :class:`Add` edits for ``coef·vector`` at absolute positions ``where``."""
    if not vector.per_position:
        return [Add(hook, positions=list(where), vector=vector.vector, scale=coef)]
    rows = vector.vector.shape[0]
    edits = [Add(hook, positions=[p], vector=vector.vector[p], scale=coef) for p in where if p < rows]
    rest = [p for p in where if p >= rows]
    if rest:
        edits.append(Add(hook, positions=rest, vector=vector.tail, scale=coef))
    return edits


def _score(model, log: Float[Tensor, " d_vocab"], ids: list[int]) -> tuple[list[float], list[int]]:
    if not ids:
        return [], []
    lp = log[ids]  # [targets]
    ranks = (log[None, :] > lp[:, None]).sum(1) + 1
    return lp.tolist(), ranks.tolist()


@torch.no_grad()
def apply_vector(model, vector: SteeringVector, prompt: str, coefs: Sequence[float], *, generate: int = 0,
                 targets: Sequence[str] = (), top_k: int = 10, include_bos: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> VectorResult:  # fmt: skip
    """Add ``c·vector`` for each ``c`` in ``coefs`` and report the next-token top-k, the target words'
    log-prob shift against c = 0, and ``generate`` greedy tokens (see the module docstring).
    ``progress(done, total)`` is called after each coefficient."""
    from mechscope.model.tokens import check_prompt

    start = time.perf_counter()
    if not isinstance(vector, SteeringVector):
        raise ConfigError(f"apply_vector needs a SteeringVector, got {type(vector).__name__}")
    check_prompt(prompt)
    values = _coefficients(coefs)
    if isinstance(generate, bool) or not isinstance(generate, int) or generate < 0:
        raise ConfigError(f"--generate must be ≥ 0, got {generate!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= model.cfg.d_vocab:
        raise ConfigError(f"--top-k must be between 1 and the vocabulary size {model.cfg.d_vocab}, got {top_k!r}")
    hook = vector.check_for(model)
    scored = target_tokens(model, prompt, targets)
    ids = [t["id"] for t in scored]
    n = len(model.to_tokens(prompt).input_ids[0])
    if n + generate > model.cfg.n_ctx:
        raise ConfigError(f"--generate {generate} after {n} prompt tokens passes the model's context window of "
                          f"{model.cfg.n_ctx} tokens: generate at most {max(0, model.cfg.n_ctx - n)}")  # fmt: skip
    first = 0 if include_bos else FIRST_POSITION
    where = steered_positions(n + generate, None, first)

    runs: dict[float, tuple[Tensor, str]] = {}
    todo = [0.0] + [c for c in dict.fromkeys(values) if c != 0.0]
    for i, c in enumerate(todo):
        edits = vector_edits(vector, hook, c, where) if c != 0.0 else []
        with model.intervene(edits):  # bound once: this coefficient's forward and generation
            log = _last_log_probs(model(prompt), f"coefficient {c:g}")
            text = model.generate(prompt, generate) if generate else ""
        runs[c] = (log, text)
        if progress is not None:
            progress(i + 1, len(todo))

    ref_log = runs[0.0][0]
    ref_lp, _ = _score(model, ref_log, ids)

    def result(c: float) -> CoefResult:
        log, text = runs[c]
        lp, ranks = _score(model, log, ids)
        shift = sum(a - b for a, b in zip(lp, ref_lp)) / len(lp) if lp else None
        return CoefResult(c, top_tokens(model, log.exp(), top_k), shift, lp, ranks, kl_div(ref_log, log), text)

    return VectorResult(
        model=model.name, hook=hook, method=vector.method, vector_norm=vector.norm, prompt=prompt,
        tokens=model.to_str_tokens(prompt), positions=describe_positions(None, first), targets=scored,
        reference=result(0.0), coefs=[result(c) for c in values],
        tracked=tracked_tokens(model, ref_log, [runs[c][0] for c in values]), generate=generate,
        seconds=time.perf_counter() - start,
    )  # fmt: skip
