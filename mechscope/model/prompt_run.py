"""One prompt through the model: next-token top-k, statistics of chosen hooks, optional interventions and
a greedy continuation. What ``mechscope run`` prints and what the web workbench's Intervene page shows.

    >>> from mechscope.model.prompt_run import run_prompt                                   # doctest: +SKIP
    >>> run_prompt(model, "The capital of France is", top_k=3).top                         # doctest: +SKIP
    [{'token': ' Paris', 'id': 9079, 'prob': 0.41}, ...]

``to_dict()`` is ``mechscope run --json``::

    {"model": str, "tokens": [str], "position": int, "top": [{"token": str, "id": int, "prob": float}],
     "hooks": {name: {"shape": [int], "norm": float, "mean": float, "min": float, "max": float}},
     "interventions": [intervention JSON], "generated": str (only when generate > 0)}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mechscope.errors import CacheError, ConfigError, OutOfRangeError
from mechscope.model.tokens import check_prompt

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel
    from mechscope.model.interventions import Intervention


@dataclass(frozen=True)
class PromptRun:
    """The result of :func:`run_prompt` (plain Python values; ``to_dict()`` is the ``--json`` schema)."""

    model: str
    """Model name."""
    tokens: list[str]
    """The prompt's tokens as exact text (BOS included)."""
    position: int
    """The position whose next-token distribution and hook statistics are reported, as asked (may be negative)."""
    top: list[dict]
    """``[{"token", "id", "prob"}]``, best first."""
    hooks: dict[str, dict]
    """Per hook read: full shape and norm / mean / min / max of the activation at ``position``."""
    interventions: list[dict]
    """The interventions applied, as JSON."""
    generated: str | None = field(default=None)
    """The greedy continuation (None when none was asked for)."""

    def to_dict(self) -> dict:
        d = {"model": self.model, "tokens": list(self.tokens), "position": self.position, "top": self.top,
             "hooks": self.hooks, "interventions": self.interventions}  # fmt: skip
        if self.generated is not None:
            d["generated"] = self.generated
        return d


def check_run_args(prompt: str, top_k: int, generate: int) -> None:
    """What needs no model: the prompt, ``top_k`` ≥ 1 and ``generate`` ≥ 0 (commands check before loading one)."""
    check_prompt(prompt)
    if isinstance(generate, bool) or not isinstance(generate, int) or generate < 0:
        raise ConfigError(f"--generate must be ≥ 0, got {generate!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"--top-k must be between 1 and the vocabulary size, got {top_k!r}")


def run_prompt(model: HookedModel, prompt: str, *, hooks: Sequence[str] = (), position: int = -1,
               interventions: Sequence[Intervention] = (), generate: int = 0, top_k: int = 10) -> PromptRun:  # fmt: skip
    """Run ``prompt`` once with ``interventions`` active: the top-``top_k`` next tokens at ``position``,
    statistics of each hook in ``hooks`` (names or globs) at that position, and with ``generate`` > 0 a
    greedy continuation of that many tokens (the interventions stay active while generating)."""
    import torch

    check_run_args(prompt, top_k, generate)
    if isinstance(position, bool) or not isinstance(position, int):
        raise ConfigError(f"position must be an integer, got {position!r}")
    if not top_k <= model.cfg.d_vocab:
        raise ConfigError(f"--top-k must be between 1 and the vocabulary size {model.cfg.d_vocab}")
    names = [n for pattern in hooks for n in model.resolve_names(pattern)]
    tokens = model.to_str_tokens(model.to_tokens(prompt).input_ids[0])  # to_tokens checks the context window
    if len(tokens) + generate > model.cfg.n_ctx:
        raise ConfigError(f"--generate {generate} after {len(tokens)} prompt tokens passes the model's context "
                          f"window of {model.cfg.n_ctx} tokens: generate at most {max(0, model.cfg.n_ctx - len(tokens))}")  # fmt: skip
    if not -len(tokens) <= position < len(tokens):
        raise OutOfRangeError(f"position {position} out of range: the prompt has {len(tokens)} tokens")
    logits, cache = model.run_with_cache(prompt, names=names, interventions=interventions)
    if not bool(torch.isfinite(logits).all()):
        raise CacheError(f"the model produced NaN or infinite logits: its weights may be damaged (or an "
                         f"intervention made them so); `mechscope check --full --model {model.name}` checks and "
                         "repairs a converted cache")  # fmt: skip
    probs = logits[0, position].float().softmax(-1)
    best = probs.topk(top_k)
    ids = best.indices.tolist()
    stats = {}
    for name in names:
        spec = model.spec(name)
        act = cache[name][0].select(spec.pos_axis - 1, position).float()
        stats[name] = {"shape": list(cache[name].shape), "norm": act.norm().item(), "mean": act.mean().item(),
                       "min": act.min().item(), "max": act.max().item()}  # fmt: skip
    generated = model.generate(prompt, generate, interventions=interventions) if generate else None
    return PromptRun(
        model=model.name, tokens=tokens, position=position,
        top=[{"token": t, "id": i, "prob": p} for t, i, p in zip(model.to_str_tokens(ids), ids, best.values.tolist())],
        hooks=stats, interventions=[iv.to_dict() for iv in interventions], generated=generated,
    )  # fmt: skip
