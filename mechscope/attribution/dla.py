"""Direct logit attribution: how much each component writes the logit difference at one position.

The residual stream at the last block's output is ``resid_pre[0] + Σ_l (attn_out[l] + mlp_out[l])``.
With the final norm's scale frozen at this run's value (TransformerLens' ``apply_ln_to_stack``), the
logit difference ``(W_U[:, a] − W_U[:, b]) · norm(resid)`` is a sum of one term per component, plus a
constant (the norm's and unembedding's biases). Heads split ``attn_out`` through the output projection
(``z_h · W_O^h``), neurons split ``mlp_out`` through the down projection (``post_n · W_down[n]``); Gemma's
post-attention and post-MLP norms are frozen the same way. Every split is exact on this run: the parts
add up to the whole within float rounding (tested to 1e-4). With a logit softcap (Gemma 2) the sum is
the logit difference *before* the softcap; ``logit_diff`` is the real one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.attribution.common import Answer, answer, direction
from mechscope.attribution.frozen import frozen_norm, linear_transpose, sublayers


@dataclass
class DLAResult:
    """Per-component direct effects on the metric at ``position`` (all in logits)."""

    tokens: list[str]
    position: int
    answer: Answer
    logit_diff: float
    """The metric as the model computes it (after any softcap)."""
    total: float
    """The metric before the softcap: what the components sum to."""
    constant: float
    """Bias terms (final norm bias, unembedding bias)."""
    embed: float
    attn: Float[Tensor, "layer"]
    mlp: Float[Tensor, "layer"]
    heads: Float[Tensor, "layer n_heads"]
    attn_bias: Float[Tensor, "layer"]
    """Output-projection (+ post-norm) bias of each attention layer: ``attn[l] = heads[l].sum() + attn_bias[l]``."""
    neurons: Float[Tensor, "layer d_mlp"]
    mlp_bias: Float[Tensor, "layer"]
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def components_sum(self) -> float:
        return self.embed + float(self.attn.sum() + self.mlp.sum()) + self.constant

    def top_neurons(self, k: int = 10) -> list[dict]:
        flat = self.neurons.flatten()
        order = torch.cat([flat.topk(min(k, flat.numel())).indices, (-flat).topk(min(k, flat.numel())).indices])
        d = self.neurons.shape[1]
        return [{"layer": int(i) // d, "neuron": int(i) % d, "effect": float(flat[i])} for i in order]

    def to_dict(self, top_k: int = 10) -> dict:
        n_layers = len(self.attn)
        return {
            "tokens": self.tokens, "position": self.position, "answer": self.answer.answer,
            "wrong": self.answer.wrong, "metric": self.answer.label, "logit_diff": self.logit_diff,
            "total": self.total, "components_sum": self.components_sum, "constant": self.constant,
            "embed": self.embed,
            "layers": {"attn": self.attn.tolist(), "mlp": self.mlp.tolist()},
            "components": [{"label": "embed", "effect": self.embed}]
            + [c for l in range(n_layers) for c in ({"label": f"L{l} attn", "effect": float(self.attn[l])},
                                                    {"label": f"L{l} mlp", "effect": float(self.mlp[l])})]
            + [{"label": "bias", "effect": self.constant}],
            "heads": self.heads.tolist(), "attn_bias": self.attn_bias.tolist(), "mlp_bias": self.mlp_bias.tolist(),
            "top_neurons": self.top_neurons(top_k),
            "seconds": round(self.seconds, 3),
        }  # fmt: skip


@torch.no_grad()
def direct_logit_attribution(model, prompt: str, answer_text: str, wrong: str | None = None,
                             position: int = -1) -> DLAResult:  # fmt: skip
    """DLA of ``logit(answer) − logit(wrong)`` (or ``logit(answer)``) at ``position`` of ``prompt``."""
    from mechscope.errors import OutOfRangeError

    t0 = time.perf_counter()
    ans = answer(model, answer_text, wrong)
    L, H, dh = model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head
    names = ["blocks.0.hook_resid_pre", f"blocks.{L - 1}.hook_resid_post"]
    for l in range(L):
        names += [f"blocks.{l}.attn.hook_z", f"blocks.{l}.hook_attn_out", f"blocks.{l}.mlp.hook_post",
                  f"blocks.{l}.hook_mlp_out"]  # fmt: skip
    ids = model.to_tokens(prompt)
    n_pos = ids.input_ids.shape[1]
    if not -n_pos <= position < n_pos:
        raise OutOfRangeError(f"position {position} out of range: the prompt has {n_pos} tokens ({-n_pos}..{n_pos - 1})")
    pos = position % n_pos
    logits, cache = model.run_with_cache(ids, names=names, positions=[pos])
    get = lambda n: cache[n][0, 0].float()  # noqa: E731  [d] at the position
    dev = model.device

    u, const = direction(model, ans)
    final = frozen_norm(model.unembed.final_norm, cache[names[1]][0, 0])
    u_res = final.pullback(u.to(dev))  # d(metric)/d(resid) with the scale frozen
    const += float(final.bias @ u.to(dev))
    total = float(get(names[1]) @ u_res) + const
    lg = logits[0, pos].float()
    ld = float(lg[ans.answer_id] - (lg[ans.wrong_id] if ans.wrong_id is not None else 0.0))

    embed = float(get(names[0]) @ u_res)
    attn, mlp = torch.zeros(L), torch.zeros(L)
    heads, attn_bias = torch.zeros(L, H), torch.zeros(L)
    neurons, mlp_bias = torch.zeros(L, model.cfg.d_mlp), torch.zeros(L)
    for l in range(L):
        attn[l] = get(f"blocks.{l}.hook_attn_out") @ u_res
        mlp[l] = get(f"blocks.{l}.hook_mlp_out") @ u_res
        mods = sublayers(model, l)
        # heads: z_h · W_O^h, through the frozen post-attention norm if the model has one
        z = get(f"blocks.{l}.attn.hook_z").reshape(H * dh)
        u_l, c_l = u_res, 0.0
        if mods.attn_post_norm is not None:
            fn = frozen_norm(mods.attn_post_norm, mods.o_proj(z[None].to(model.dtype))[0])
            u_l, c_l = fn.pullback(u_res), float(fn.bias @ u_res)
        Wu, b_O = linear_transpose(mods.o_proj, u_l, H * dh, dev, model.dtype)  # W_O @ u_l: [H·dh]
        heads[l] = (z * Wu).reshape(H, dh).sum(-1).cpu()
        attn_bias[l] = float(b_O @ u_l) + c_l
        # neurons: post_n · W_down[n], through the frozen post-MLP norm if any
        act = get(f"blocks.{l}.mlp.hook_post")
        u_l, c_l = u_res, 0.0
        if mods.mlp_post_norm is not None:
            fn = frozen_norm(mods.mlp_post_norm, mods.down(act[None].to(model.dtype))[0])
            u_l, c_l = fn.pullback(u_res), float(fn.bias @ u_res)
        Wu, b_d = linear_transpose(mods.down, u_l, model.cfg.d_mlp, dev, model.dtype)
        neurons[l] = (act * Wu).cpu()
        mlp_bias[l] = float(b_d @ u_l) + c_l
    return DLAResult(model.to_str_tokens(ids.input_ids[0]), pos, ans, ld, total, const, embed, attn, mlp, heads,
                     attn_bias, neurons, mlp_bias, time.perf_counter() - t0)  # fmt: skip
