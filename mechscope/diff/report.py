"""``diff_models``: the whole base-vs-tuned comparison as one :class:`DiffResult`.

1. per-layer differences of the residual stream (:mod:`mechscope.diff.activations`);
2. the logit lens of the mean difference at every layer, the best layer and the tokens it promotes
   (:mod:`mechscope.diff.lens`);
3. the mean difference at the steering layer (the best layer unless given) added to the base model
   with a coefficient sweep (:mod:`mechscope.diff.steer`); targets default to the promoted tokens.

    >>> from mechscope.diff import diff_models                                   # doctest: +SKIP
    >>> res = diff_models(base, tuned, prompts, targets=["ocean", "sea"])          # doctest: +SKIP
    >>> res.to_dict()["promoted_tokens"][:3]                                      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from mechscope.diff.activations import DiffConfig, DiffStats, diff_activations
from mechscope.diff.steer import DEFAULT_COEFS, DEFAULT_PROMPT

DEFAULT_TARGETS = 5
"""Promoted tokens used as steering targets when none are given."""


@dataclass
class DiffResult:
    """Everything ``mechscope diff`` reports (``crosscoder`` filled by ``--crosscoder``)."""

    base: str
    tuned: str
    config: DiffConfig
    stats: DiffStats
    lens: Tensor
    """``[layer, d_vocab]``: the mean difference's lens at each layer (see :mod:`mechscope.diff.lens`)."""
    lens_scores: list[float]
    best_layer: int
    promoted_tokens: list[dict]
    steer_layer: int
    steer_prompt: str
    targets: list[str]
    steer: list[dict]
    crosscoder: dict | None = None
    seconds: float = 0.0

    def layer_rows(self) -> list[dict]:
        s = self.stats
        rows = []
        for j, layer in enumerate(s.layers):
            row = {"layer": layer, "mean_norm": float(s.norm_by_layer[j]), "rel_norm": float(s.rel_norm[j]),
                   "base_norm": float(s.base_norm_by_layer[j]), "mean_diff_norm": float(s.mean_diff[j].norm()),
                   "lens_score": self.lens_scores[j]}  # fmt: skip
            for c, v in s.component_norms.items():
                row[f"{c}_norm"] = float(v[j])
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        s = self.stats
        out = {
            "base": self.base,
            "tuned": self.tuned,
            "config": self.config.to_dict(),
            "prompts": s.n_prompts,
            "tokens": s.n_tokens,
            "layers": self.layer_rows(),
            "norm_by_position": [[float(v) for v in row] for row in s.norm_by_pos],
            "best_layer": self.best_layer,
            "promoted_tokens": [{"token": t["token"], "logit": t["logit"]} for t in self.promoted_tokens],
            "steer_layer": self.steer_layer,
            "steer_prompt": self.steer_prompt,
            "targets": self.targets,
            "steer": self.steer,
            "seconds": round(self.seconds, 2),
        }
        if self.crosscoder is not None:
            out["crosscoder"] = self.crosscoder
        return out


def diff_models(base, tuned, seqs: list[list[int]], cfg: DiffConfig = DiffConfig(), *, targets: Sequence[str] = (),
                steer_layer: int | None = None, steer_prompt: str = DEFAULT_PROMPT,
                coefs: Sequence[float] = DEFAULT_COEFS, generate: int = 0, top_n: int = 20, sink=None,
                sink_layer: int | None = None, progress: bool = True) -> DiffResult:  # fmt: skip
    """Compare ``tuned`` against ``base`` on ``seqs`` (token ids from :mod:`mechscope.diff.pair`)."""
    import time

    from mechscope.diff import lens as L
    from mechscope.diff.pair import check_pair
    from mechscope.diff.steer import check_coefs, steer_sweep
    from mechscope.errors import ConfigError

    t0 = time.perf_counter()
    check_pair(base, tuned)
    coefs = check_coefs(coefs)
    if steer_layer is not None and not 0 <= steer_layer < base.cfg.n_layers:
        raise ConfigError(f"steer layer {steer_layer} out of range: the models have {base.cfg.n_layers} layers")
    stats = diff_activations(base, tuned, seqs, cfg, sink=sink, sink_layer=sink_layer, progress=progress)
    gain = L.norm_gain(tuned)
    logits = L.lens_logits(tuned, stats.mean_diff, stats.base_rms, gain)
    scores = L.peak_scores(logits, top_n)
    best = L.best_layer(stats.layers, logits, top_n) if steer_layer is None else steer_layer  # a given layer wins
    if best not in stats.layers:
        raise ConfigError(f"steer layer {best} is not among the compared layers {stats.layers}: add it to --layers")
    promoted = L.top_tokens(tuned, logits[stats.layers.index(best)], top_n)
    layer = best
    if not targets:
        targets = [t["token"] for t in promoted[:DEFAULT_TARGETS] if t["token"].strip()]
    vector = stats.mean_diff[stats.layers.index(layer)]
    rows = steer_sweep(base, vector, f"blocks.{layer}.hook_resid_post", steer_prompt, coefs, targets,
                       generate=generate)  # fmt: skip
    steer = [{"coef": r["coef"], "target_logprob_shift": r["target_logprob_shift"], "target_probs": r["target_probs"],
              "top": r["top"][:5], "text": r["text"]} for r in rows]  # fmt: skip
    return DiffResult(base=base.name, tuned=tuned.name, config=cfg, stats=stats, lens=logits,
                      lens_scores=[float(x) for x in scores], best_layer=best, promoted_tokens=promoted,
                      steer_layer=layer, steer_prompt=steer_prompt, targets=list(targets), steer=steer,
                      seconds=time.perf_counter() - t0)  # fmt: skip
