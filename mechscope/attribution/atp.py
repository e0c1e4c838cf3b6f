"""Attribution patching (Nanda 2023; Kramár et al. 2024, "AtP*"): every component's patching effect
estimated at once from one backward pass.

The effect of patching component ``n`` from clean into corrupt is approximated to first order around
the corrupted run: ``Δmetric ≈ (a_clean(n) − a_corrupt(n)) · ∂metric/∂a(n) |corrupt``. One clean
forward (stopped at the final norm) and one corrupted forward + backward give the estimate for every
``resid_pre`` / ``attn_out`` / ``mlp_out`` (layer, position) and every head (``hook_z`` at all
positions) together; it is normalised like :mod:`~mechscope.attribution.patching` (0 corrupt, 1 clean).

Gradients are taken with respect to a zero tensor added at each hook (``act + 0``, written back), so the
gradient at a hook is exactly ∂metric/∂activation along the path that flows downstream from it.

AtP*'s two fixes: the *QK fix* recomputes the attention softmax exactly when a query or key is
patched, because a linear estimate through a saturated softmax is badly wrong. Our nodes (residual,
sublayer outputs, each head's ``z``) sit after the softmax, so no softmax lies between a node and its
linear read-out and the fix does not apply. *GradDrop* (``grad_drop=True``, ``--grad-drop``) exposes
paths that cancel: it repeats the backward pass once per layer l with the gradient through layer l's
residual contribution (its ``attn_out`` and ``mlp_out``) set to zero, and reports
``(1/(L−1)) Σ_l |estimate with layer l dropped|`` — unsigned magnitudes for ranking nodes, to be checked
with the exact sweep (``--method exact``). It costs one forward and L + 1 backward passes (the forward
graph is kept; the drop is read at backward time). docs/circuits.md reports the agreement on Gemma.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from mechscope.attribution.common import answer, answer_logits, logit_diff
from mechscope.attribution.patching import FINAL, Align, PatchResult, _assemble, _jobs, hook_of, pair_prompts, parse_what
from mechscope.errors import PromptError


def attribution_patching(model, clean: str, corrupt: str, answer_text: str, wrong: str | None = None, *,
                         what: str | Sequence[str] = ("resid_pre", "attn_out", "mlp_out"),
                         align: Align | None = None, grad_drop: bool = False) -> PatchResult:  # fmt: skip
    """Gradient estimate of :func:`~mechscope.attribution.patching.activation_patching`'s effects
    (with ``grad_drop``, AtP*'s GradDrop magnitudes; see the module docstring)."""
    t0 = time.perf_counter()
    kinds = parse_what(what)
    ans = answer(model, answer_text, wrong)
    c_ids, k_ids, q = pair_prompts(model, clean, corrupt, align)
    names = sorted({hook_of(k, l) for k in kinds for l in range(model.cfg.n_layers)}, key=model.hook_names.index)
    with torch.no_grad():
        cache = model.collect(c_ids[None], [*names, FINAL])
    clean_ld = float(logit_diff(answer_logits(model, cache[FINAL][:, -1], ans))[0])

    acts, zeros = {}, {}

    def tap(name):
        def fn(act, spec):
            acts[name] = act.detach()
            zeros[name] = torch.zeros_like(act, requires_grad=True)
            return act + zeros[name]

        return fn

    L = model.cfg.n_layers
    state = {"drop": None}
    hooks = [(n, tap(n)) for n in names]
    if grad_drop:  # gates after the taps: dropping layer l also silences that layer's own nodes
        hooks += [(f"blocks.{l}.{h}", _gate(l, state)) for l in range(L) for h in ("hook_attn_out", "hook_mlp_out")]
    with torch.enable_grad():
        normed = model.collect(k_ids[None], [FINAL], positions=[-1], fwd_hooks=hooks, grad=True)[FINAL][:, 0]
        metric = logit_diff(answer_logits(model, normed, ans))[0]
        leaves = [zeros[n] for n in names]
        grads = dict(zip(names, torch.autograd.grad(metric, leaves, allow_unused=True, retain_graph=grad_drop)))
        dropped = []
        for l in range(L) if grad_drop else ():
            state["drop"] = l
            dropped.append(dict(zip(names, torch.autograd.grad(metric, leaves, allow_unused=True,
                                                               retain_graph=l < L - 1))))  # fmt: skip
    corrupt_ld = float(metric.detach())
    denom = clean_ld - corrupt_ld
    if abs(denom) < 1e-6:
        raise PromptError(f"the clean and corrupt prompts give the same logit difference ({clean_ld:.4f}): "
                          "nothing for a patch to restore; choose prompts that differ in the answer")  # fmt: skip
    jobs = _jobs(model, kinds, q)
    if not grad_drop:
        values = _estimates(names, grads, cache, acts, q, jobs)
        return _assemble(model, kinds, jobs, values / denom, c_ids, k_ids, ans, clean_ld, corrupt_ld, align,
                         time.perf_counter() - t0, 2, "attribution")  # fmt: skip
    total = sum(_estimates(names, g, cache, acts, q, jobs).abs() for g in dropped)
    return _assemble(model, kinds, jobs, total / (L - 1) / abs(denom), c_ids, k_ids, ans, clean_ld, corrupt_ld,
                     align, time.perf_counter() - t0, 2, "attribution+graddrop")  # fmt: skip


def _estimates(names, grads, cache, acts, q, jobs) -> torch.Tensor:
    """``(clean − corrupt) · grad`` per job (summed over d_model, or over positions and d_head for heads)."""
    valid = (q >= 0).nonzero().flatten()
    qv = q[valid]
    est: dict[str, torch.Tensor] = {}
    for name in names:
        g = grads[name]
        g = torch.zeros_like(acts[name]) if g is None else g
        diff = cache[name][0, valid] - acts[name][0, qv]  # clean − corrupt at paired positions
        prod = (diff * g[0, qv]).float()
        if name.endswith("hook_z"):
            est[name] = prod.sum(dim=(0, 2)).cpu()  # [n_heads]
        else:
            full = torch.full((len(q),), float("nan"))
            full[valid] = prod.sum(-1).cpu()
            est[name] = full
    return torch.tensor([float(est[hook_of(k, l)][i]) for k, l, i in jobs])


class _DropGrad(torch.autograd.Function):
    """Identity forward; backward passes the gradient unless ``state["drop"]`` names this layer."""

    @staticmethod
    def forward(ctx, x, layer: int, state: dict):
        ctx.layer, ctx.state = layer, state
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return (torch.zeros_like(grad) if ctx.state["drop"] == ctx.layer else grad), None, None


def _gate(layer: int, state: dict):
    def fn(act, spec):
        return _DropGrad.apply(act, layer, state)

    return fn
