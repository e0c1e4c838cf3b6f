"""One cell of a patching or tracing heatmap, run alone: the top-k next tokens under that single patch.

A heatmap cell is one number (the normalised logit difference, or the indirect effect on P(answer));
these functions rerun that one patched forward with the whole vocabulary unembedded at the last
position, so a reader sees *what* the patch brings back, not only how much:

- :func:`patch_cell`: the corrupt prompt with one clean activation put back (``resid_pre``, ``attn_out``,
  ``mlp_out`` at (layer, position), or ``heads``: one head's ``hook_z`` at every position), through the
  same hook builder as :func:`~mechscope.attribution.patching.activation_patching`; its ``value`` equals
  that heatmap's cell;
- :func:`trace_cell`: the subject-noised prompt with one state restored (``resid``, ``mlp`` or ``attn``
  window at (layer, position)), averaged over the same noise draws as
  :func:`~mechscope.attribution.tracing.causal_trace`; its ``effect`` equals that heatmap's cell.

The web workbench's Circuits page calls them when a cell is clicked (``POST /api/circuits/patch-cell``,
``POST /api/circuits/trace-cell``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from mechscope.attribution import patching, tracing
from mechscope.attribution.common import answer, answer_logits, logit_diff, subject_positions
from mechscope.attribution.config import TraceConfig
from mechscope.errors import ConfigError, OutOfRangeError

FINAL = "ln_final.hook_normalized"


@dataclass
class CellResult:
    """The top-k next tokens under one patch, beside the unpatched runs' top-k."""

    method: str
    """``patch`` or ``trace``."""
    kind: str
    layer: int
    index: int
    """Clean position (or head, for ``heads``)."""
    top: list[dict]
    """``[{"token", "id", "prob"}]`` under the patch (for a trace: probabilities averaged over the noise draws)."""
    base: dict[str, list[dict]]
    """The same for the reference runs: ``clean`` and ``corrupt`` (patch) or ``clean`` and ``corrupted`` (trace)."""
    value: float
    """The heatmap's cell: normalised logit difference (patch) or indirect effect on P(answer) (trace)."""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"method": self.method, "kind": self.kind, "layer": self.layer, "index": self.index,
                "value": self.value, "top": self.top, **{f"{k}_top": v for k, v in self.base.items()}, **self.extra}  # fmt: skip


def _top(model, probs: Tensor, k: int) -> list[dict]:
    best = probs.float().topk(k)
    ids = best.indices.tolist()
    return [{"token": t, "id": i, "prob": p} for t, i, p in zip(model.to_str_tokens(ids), ids, best.values.tolist())]


def _check_top_k(model, top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= model.cfg.d_vocab:
        raise ConfigError(f"top_k must be between 1 and the vocabulary size {model.cfg.d_vocab}, got {top_k!r}")


def _check_layer(model, layer: int) -> None:
    L = model.cfg.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < L:
        raise OutOfRangeError(f"layer {layer!r} out of range: the model has layers 0..{L - 1}")


def _last_probs(model, ids: Tensor, fwd_hooks=()) -> Tensor:
    normed = model.collect(ids, [FINAL], positions=[-1], fwd_hooks=fwd_hooks)[FINAL][:, 0]
    return model.unembed.logits(normed).float().softmax(-1)  # [rows, d_vocab]


@torch.no_grad()
def patch_cell(model, clean: str, corrupt: str, answer_text: str, wrong: str | None = None, *, kind: str,
               layer: int, index: int, align: patching.Align | None = None, top_k: int = 10) -> CellResult:  # fmt: skip
    """The corrupt run with the clean ``kind`` activation at (``layer``, clean position or head ``index``)
    put back: top-``top_k`` next tokens, and the cell's normalised logit difference."""
    _check_top_k(model, top_k)
    kinds = patching.parse_what([kind])
    kind = kinds[0]
    _check_layer(model, layer)
    ans = answer(model, answer_text, wrong)
    c_ids, k_ids, q = patching.pair_prompts(model, clean, corrupt, align)
    limit = model.cfg.n_heads if kind == "heads" else len(c_ids)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < limit:
        what = "head" if kind == "heads" else "position"
        raise OutOfRangeError(f"{what} {index!r} out of range: 0..{limit - 1}")
    if kind != "heads" and int(q[index]) < 0:
        raise OutOfRangeError(f"clean position {index} has no partner in the corrupt prompt (align {align}): "
                              "choose a position the heatmap shows")  # fmt: skip
    name = patching.hook_of(kind, layer)
    cache = model.collect(c_ids[None], sorted({name, FINAL}, key=model.hook_names.index))
    clean_probs = model.unembed.logits(cache[FINAL][:, -1]).float().softmax(-1)[0]
    clean_ld = float(logit_diff(answer_logits(model, cache[FINAL][:, -1], ans))[0])
    corrupt_ld = float(patching._final_logit_diff(model, k_ids[None], ans)[0])
    hooks = patching._patch_hooks([(kind, layer, index)], cache, q)
    normed = model.collect(k_ids[None], [FINAL], positions=[-1], fwd_hooks=hooks)[FINAL][:, 0]
    probs = model.unembed.logits(normed).float().softmax(-1)[0]
    patched_ld = float(logit_diff(answer_logits(model, normed, ans))[0])
    denom = clean_ld - corrupt_ld
    value = (patched_ld - corrupt_ld) / denom if abs(denom) >= 1e-6 else float("nan")
    base = {"clean": _top(model, clean_probs, top_k), "corrupt": _top(model, _last_probs(model, k_ids[None])[0], top_k)}
    extra = {"hook": name, "answer": ans.answer, "wrong": ans.wrong, "patched_logit_diff": patched_ld,
             "clean_logit_diff": clean_ld, "corrupt_logit_diff": corrupt_ld,
             "position": None if kind == "heads" else index, "head": index if kind == "heads" else None}  # fmt: skip
    return CellResult("patch", kind, layer, index, _top(model, probs, top_k), base, value, extra)


@torch.no_grad()
def trace_cell(model, prompt: str, subject: str, answer_text: str, config: TraceConfig | None = None, *, kind: str,
               layer: int, position: int, top_k: int = 10) -> CellResult:  # fmt: skip
    """The subject-noised run with one ``kind`` state restored at (``layer``, ``position``): top-``top_k``
    next tokens (probabilities averaged over the noise draws) and the cell's indirect effect."""
    cfg = config or TraceConfig()
    _check_top_k(model, top_k)
    if kind not in tracing.KINDS:
        raise ConfigError(f"kind must be one of {', '.join(tracing.KINDS)}, got {kind!r}")
    _check_layer(model, layer)
    subj = subject_positions(model, prompt, subject)
    answer_id = model.token_id(answer_text)
    ids = model.to_tokens(prompt).input_ids[0]
    P, L = len(ids), model.cfg.n_layers
    if isinstance(position, bool) or not isinstance(position, int) or not -P <= position < P:
        raise OutOfRangeError(f"position {position!r} out of range: the prompt has {P} tokens ({-P}..{P - 1})")
    position %= P
    layers = [layer] if kind == "resid" else list(tracing.window_layers(layer, cfg.window, L))
    names = sorted({f"blocks.{l}.{tracing.HOOK[kind]}" for l in layers} | {"hook_embed", FINAL}, key=model.hook_names.index)
    clean = model.collect(ids[None], names)
    clean_probs = model.unembed.logits(clean[FINAL][:, -1]).float().softmax(-1)[0]
    sigma = tracing.embedding_sigma(model, clean["hook_embed"][0, -1], int(ids[-1]))
    gen = torch.Generator().manual_seed(cfg.seed)  # the same draws as causal_trace
    noise = (torch.randn(cfg.samples, len(subj), model.cfg.d_model, generator=gen) * cfg.noise * sigma)
    noise = noise.to(model.device, model.dtype)
    subj_t = torch.tensor(subj, device=model.device)
    draws = list(range(cfg.samples))
    batch = ids[None].expand(cfg.samples, -1)
    corrupted = _last_probs(model, batch, tracing._trace_hooks(model, [(None, -1, -1)] * cfg.samples, draws, noise,
                                                               subj_t, clean, cfg.window)).mean(0)  # fmt: skip
    restored = _last_probs(model, batch, tracing._trace_hooks(model, [(kind, layer, position)] * cfg.samples, draws,
                                                              noise, subj_t, clean, cfg.window)).mean(0)  # fmt: skip
    effect = float(restored[answer_id] - corrupted[answer_id])
    base = {"clean": _top(model, clean_probs, top_k), "corrupted": _top(model, corrupted, top_k)}
    extra = {"position": position, "hooks": [n for n in names if n not in ("hook_embed", FINAL)], "answer": answer_text,
             "answer_prob": float(restored[answer_id]), "clean_prob": float(clean_probs[answer_id]),
             "corrupted_prob": float(corrupted[answer_id]), "subject_positions": subj, "samples": cfg.samples}  # fmt: skip
    return CellResult("trace", kind, layer, position, _top(model, restored, top_k), base, effect, extra)
