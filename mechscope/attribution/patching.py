"""Activation patching: run the corrupted prompt, put back one clean activation, see how much of the
clean behaviour returns.

The metric is the logit difference ``logit(answer) − logit(wrong)`` at the last position, normalised
so that 0 is the corrupted run and 1 the clean run. Components:

- ``resid_pre``, ``attn_out``, ``mlp_out``: one (layer, position) at a time → ``[layer, pos]`` heatmaps;
- ``heads``: one head's ``hook_z`` at every position → ``[layer, n_heads]``.

Patched runs are batched: a forward holds up to ``batch_size`` copies of the corrupted prompt and each
row patches a different component (one hook function per hook point writes the clean values into the
rows that patch there). The forward ends at the final norm (``model.collect``) and the answer's logits
are read from two columns of the unembedding, never the whole vocabulary.

Prompts of different token lengths need ``align``: ``"left"`` pairs clean position ``p`` with corrupt
position ``p`` (both start with BOS), ``"right"`` pairs them counting from the end (the last tokens
line up); clean positions without a partner are ``NaN`` (``null`` in JSON). Heatmap columns are always
the clean prompt's tokens.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.attribution.common import Answer, answer, answer_logits, logit_diff
from mechscope.errors import ConfigError, PromptError

KINDS = ("resid_pre", "attn_out", "mlp_out", "heads")
WHAT_NAMES = {"resid": "resid_pre", "attn": "attn_out", "mlp": "mlp_out", "heads": "heads",
              "resid_pre": "resid_pre", "attn_out": "attn_out", "mlp_out": "mlp_out"}  # fmt: skip
Align = Literal["left", "right"]
FINAL = "ln_final.hook_normalized"


def hook_of(kind: str, layer: int) -> str:
    return {"resid_pre": f"blocks.{layer}.hook_resid_pre", "attn_out": f"blocks.{layer}.hook_attn_out",
            "mlp_out": f"blocks.{layer}.hook_mlp_out", "heads": f"blocks.{layer}.attn.hook_z"}[kind]  # fmt: skip


def parse_what(what: str | Sequence[str]) -> tuple[str, ...]:
    items = [w.strip() for w in (what.split(",") if isinstance(what, str) else what) if w.strip()]
    bad = [w for w in items if w not in WHAT_NAMES]
    if bad or not items:
        raise ConfigError(f"--what takes a comma-separated list of resid, attn, mlp, heads; got {bad or what!r}")
    return tuple(k for k in KINDS if k in {WHAT_NAMES[w] for w in items})


@dataclass
class PatchResult:
    tokens: list[str]
    """The clean prompt's tokens: the heatmaps' columns."""
    corrupt_tokens: list[str]
    answer: Answer
    clean_logit_diff: float
    corrupt_logit_diff: float
    effects: dict[str, Float[Tensor, "layer pos"]]
    heads: Float[Tensor, "layer n_heads"] | None
    method: str = "exact"
    align: str | None = None
    seconds: float = 0.0
    forwards: int = 0

    def to_dict(self) -> dict:
        d = {"tokens": self.tokens, "corrupt_tokens": self.corrupt_tokens, "answer": self.answer.answer,
             "wrong": self.answer.wrong, "metric": "normalised logit difference (0 = corrupt, 1 = clean)",
             "clean_logit_diff": self.clean_logit_diff, "corrupt_logit_diff": self.corrupt_logit_diff,
             "method": self.method, "align": self.align,
             "effects": {k: v.tolist() for k, v in self.effects.items()}}  # fmt: skip
        if self.heads is not None:
            d["heads"] = self.heads.tolist()
        d.update(seconds=round(self.seconds, 3), forwards=self.forwards)
        return d


def pair_prompts(model, clean: str, corrupt: str, align: Align | None) -> tuple[Tensor, Tensor, Tensor]:
    """Token ids of both prompts and, per clean position, its corrupt partner (−1 where none)."""
    c_ids = model.to_tokens(clean).input_ids[0]
    k_ids = model.to_tokens(corrupt).input_ids[0]
    nc, nk = len(c_ids), len(k_ids)
    if align not in (None, "left", "right"):
        raise ConfigError(f"--align must be 'left' or 'right', got {align!r}")
    if nc != nk and align is None:
        raise PromptError(f"the clean prompt has {nc} tokens and the corrupt prompt {nk}: make them the same "
                          "length or pass --align left|right to say how positions pair up")  # fmt: skip
    q = torch.arange(nc) if align != "right" else torch.arange(nc) - (nc - nk)
    q[(q < 0) | (q >= nk)] = -1
    return c_ids, k_ids, q


def _final_logit_diff(model, ids: Tensor, ans: Answer, fwd_hooks=()) -> Tensor:
    normed = model.collect(ids, [FINAL], positions=[-1], fwd_hooks=fwd_hooks)[FINAL][:, 0]
    return logit_diff(answer_logits(model, normed, ans))


def _jobs(model, kinds: tuple[str, ...], q: Tensor) -> list[tuple[str, int, int]]:
    """(kind, layer, clean position or head) for every patch, in output order."""
    jobs = []
    for kind in kinds:
        for l in range(model.cfg.n_layers):
            if kind == "heads":
                jobs += [(kind, l, h) for h in range(model.cfg.n_heads)]
            else:
                jobs += [(kind, l, p) for p in range(len(q)) if q[p] >= 0]
    return jobs


def _patch_hooks(chunk, clean: dict[str, Tensor], q: Tensor):
    """One hook per hook point: writes each row's clean value into the corrupted activation."""
    by_hook: dict[str, list[tuple[int, str, int]]] = {}
    for row, (kind, layer, idx) in enumerate(chunk):
        by_hook.setdefault(hook_of(kind, layer), []).append((row, kind, idx))
    valid = (q >= 0).nonzero().flatten()  # clean positions with a partner

    def make(name, items):
        src = clean[name][0]  # [pos, ...] of the clean run
        rows = torch.tensor([r for r, _, _ in items])
        if items[0][1] == "heads":
            heads = torch.tensor([i for _, _, i in items])

            def fn(act, spec):
                act = act.clone()
                for p in valid.tolist():  # act[rows, q, heads] = clean[p, heads]
                    act[rows, int(q[p]), heads] = src[p, heads].to(act.dtype)
                return act
        else:
            ps = torch.tensor([i for _, _, i in items])

            def fn(act, spec):
                act = act.clone()
                act[rows, q[ps]] = src[ps].to(act.dtype)
                return act

        return fn

    return [(name, make(name, items)) for name, items in by_hook.items()]


@torch.no_grad()
def activation_patching(model, clean: str, corrupt: str, answer_text: str, wrong: str | None = None, *,
                        what: str | Sequence[str] = ("resid_pre", "attn_out", "mlp_out"), align: Align | None = None,
                        batch_size: int = 32, progress: bool = False, on_progress=None) -> PatchResult:  # fmt: skip
    """Exact activation patching (clean → corrupt), normalised; see the module docstring.

    ``on_progress(done, total)`` is called after every batched forward (the web workbench's progress and
    cancel: an exception raised there stops the analysis; hooks are removed as always)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    t0 = time.perf_counter()
    kinds = parse_what(what)
    ans = answer(model, answer_text, wrong)
    c_ids, k_ids, q = pair_prompts(model, clean, corrupt, align)
    names = sorted({hook_of(k, l) for k in kinds for l in range(model.cfg.n_layers)} | {FINAL},
                   key=model.hook_names.index)  # fmt: skip
    cache = model.collect(c_ids[None], names)
    clean_ld = float(logit_diff(answer_logits(model, cache[FINAL][:, -1], ans))[0])
    corrupt_ld = float(_final_logit_diff(model, k_ids[None], ans)[0])
    denom = clean_ld - corrupt_ld
    if abs(denom) < 1e-6:
        raise PromptError(f"the clean and corrupt prompts give the same logit difference ({clean_ld:.4f}): "
                          "nothing for a patch to restore; choose prompts that differ in the answer")  # fmt: skip
    jobs = _jobs(model, kinds, q)
    values = torch.empty(len(jobs))
    bar = _progress(len(jobs), progress)
    forwards = 2
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        ids = k_ids[None].expand(len(chunk), -1)
        values[start : start + len(chunk)] = _final_logit_diff(model, ids, ans, _patch_hooks(chunk, cache, q)).cpu()
        forwards += 1
        if bar is not None:
            bar.update(len(chunk))
        if on_progress is not None:
            on_progress(start + len(chunk), len(jobs))
    if bar is not None:
        bar.close()
    norm = (values - corrupt_ld) / denom
    return _assemble(model, kinds, jobs, norm, c_ids, k_ids, ans, clean_ld, corrupt_ld, align,
                     time.perf_counter() - t0, forwards, "exact")  # fmt: skip


def _assemble(model, kinds, jobs, norm, c_ids, k_ids, ans, clean_ld, corrupt_ld, align, seconds, forwards, method):
    L, P = model.cfg.n_layers, len(c_ids)
    effects = {k: torch.full((L, P), float("nan")) for k in kinds if k != "heads"}
    heads = torch.full((L, model.cfg.n_heads), float("nan")) if "heads" in kinds else None
    for (kind, layer, idx), v in zip(jobs, norm.tolist()):
        if kind == "heads":
            heads[layer, idx] = v
        else:
            effects[kind][layer, idx] = v
    return PatchResult(model.to_str_tokens(c_ids), model.to_str_tokens(k_ids), ans, clean_ld, corrupt_ld, effects,
                       heads, method, align, seconds, forwards)  # fmt: skip


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="mechscope: patching", unit="patch", leave=False)


@torch.no_grad()
def naive_patching(model, clean: str, corrupt: str, answer_text: str, wrong: str | None = None,
                   kind: str = "resid_pre") -> Float[Tensor, "layer pos"]:  # fmt: skip
    """The reference: one full forward (all logits) per patch through a bound ``Set`` intervention.
    Used by tests and the benchmark; :func:`activation_patching` must agree with it."""
    from mechscope.interventions import Set

    ans = answer(model, answer_text, wrong)
    c_ids, k_ids, _ = pair_prompts(model, clean, corrupt, None)
    names = [hook_of(kind, l) for l in range(model.cfg.n_layers)]
    logits, cache = model.run_with_cache(c_ids[None], names=names)
    metric = lambda lg: float(lg[0, -1, ans.answer_id] - (lg[0, -1, ans.wrong_id] if ans.wrong_id is not None else 0))  # noqa: E731
    clean_ld, corrupt_ld = metric(logits), metric(model(k_ids[None]))
    out = torch.empty(model.cfg.n_layers, len(c_ids))
    for l, name in enumerate(names):
        for p in range(len(c_ids)):
            edit = model.bind([Set(name, value=cache[name][0, p], positions=[p])])
            out[l, p] = (metric(model(k_ids[None], interventions=edit)) - corrupt_ld) / (clean_ld - corrupt_ld)
    return out
