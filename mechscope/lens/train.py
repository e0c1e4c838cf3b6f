"""Train a tuned lens: minimise KL(final ‖ translator row) on a corpus, one translator per row.

    >>> lens = train_tuned_lens(model, TunedLensTrainConfig(tokens=204_800))      # doctest: +SKIP
    >>> lens.save(default_lens_dir(model))                               # doctest: +SKIP

Each step runs ``contexts_per_step`` packed contexts through the model (hooks read the rows; the
model's output distribution is the final row through its own final norm and unembedding), samples
``positions_per_step`` positions (never the BOS position, an attention sink whose residual is an
outlier), and trains every translator on those positions against the model's output distribution
there. Translators start at zero (the logit lens). Adam, linear warm-up, linear decay to 0.

Cost: the unembedding (d_model × d_vocab, 168 M multiply-adds for Gemma 3) dominates, forward and
backward, per translator per sampled position. ``precision="bfloat16"`` runs those two matmuls in
bfloat16 (≈5× faster on CPUs with AVX-512 BF16; targets, softmax and the loss stay float32).
Sampling 1/8 of the positions keeps a 200k-token run near half an hour on 2 CPU cores (28 min measured);
every token still goes through the model and shapes the residuals the sampled positions see.

With ``checkpoint=DIR`` the translators, Adam's state, the step and the sampling generator are written
atomically every ``checkpoint_every`` steps and at the end (:mod:`mechscope.lens.checkpoint`); calling
again with the same arguments resumes there and ends bit-identical to an uninterrupted run on CPU.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.errors import ConfigError
from mechscope.lens import checkpoint as ckpt
from mechscope.lens.config import TunedLensTrainConfig
from mechscope.lens.tuned import TunedLens
from mechscope.runtime import flush_denormals

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

log = logging.getLogger("mechscope")


class _KLFromNormed(torch.autograd.Function):
    """KL(p ‖ softmax(unembed(x))) per row, [g, m], with a hand-written backward (``softmax - p`` through W_U), so
    no [rows × vocab] autograd graph is kept; the unembedding may run in bfloat16."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, p: Tensor, entropy: Tensor, cap: float | None) -> Tensor:
        # x [g, m, d] normed rows; weight [vocab, d] (maybe bf16); p [m, vocab] targets; entropy [m] = H(p)
        z = torch.matmul(x.to(weight.dtype), weight.T).to(p.dtype)  # [g, m, vocab], float32 targets
        if cap is not None:
            th = torch.tanh(z.div_(cap))
            z = th * cap
        lse = torch.logsumexp(z, -1)  # [g, m]
        kl = lse - torch.einsum("gmv,mv->gm", z, p) - entropy  # KL(p ‖ q) = lse - E_p[l] - H(p)
        grad = z.sub_(lse[..., None]).exp_().sub_(p)  # softmax - p, reusing z's memory
        if cap is not None:
            grad.mul_(1 - th.square_())
        ctx.save_for_backward(grad.to(weight.dtype), weight)
        ctx.x_dtype = x.dtype
        return kl

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad, weight = ctx.saved_tensors
        grad_x = torch.matmul(grad, weight).to(ctx.x_dtype) * grad_out[..., None]
        return grad_x, None, None, None, None


def _targets(model: HookedModel, final: Float[Tensor, "m d_model"]) -> tuple[Tensor, Tensor]:
    """The model's output distribution (float32) and its entropy at the sampled positions."""
    logp = model.unembed(final).float().log_softmax(-1)
    return logp.exp(), -(logp.exp() * logp).sum(-1)


def train_tuned_lens(model: HookedModel, cfg: TunedLensTrainConfig = TunedLensTrainConfig(), contexts: Tensor | None = None,
                     progress: bool = True, checkpoint: str | Path | None = None,
                     checkpoint_every: int = 25) -> TunedLens:  # fmt: skip
    """Train and return a :class:`TunedLens` (its ``info`` holds the config and the results).

    contexts: packed token contexts [n, seq] to train on; default: the corpus's train split.
    checkpoint: a directory (by convention ``<out>.checkpoint``) where the state is written atomically every
    ``checkpoint_every`` steps and at the end (:mod:`mechscope.lens.checkpoint`). If it already holds a
    checkpoint of the same model, config and training text, training resumes from it, and ends with the
    same translators an uninterrupted run gives (bit for bit on CPU); another one is refused with one line.
    """
    from tqdm.auto import tqdm

    from mechscope.data.corpus import corpus_contexts

    start = time.perf_counter()
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ConfigError(f"checkpoint_every must be a positive number of steps, got {checkpoint_every!r}")
    if contexts is None:
        contexts = corpus_contexts(model.tokenizer, cfg.corpus, "train", max_tokens=cfg.tokens, progress=progress)
    if contexts.shape[0] * contexts.shape[1] < cfg.tokens:
        raise ConfigError(f"the training split holds {contexts.numel():,} tokens, fewer than --tokens "
                          f"{cfg.tokens:,}: ask for fewer tokens or add text with --corpus")  # fmt: skip
    if contexts.shape[1] - 1 < 1:
        raise ConfigError("contexts must have at least 2 tokens")
    gen = torch.Generator().manual_seed(cfg.seed)
    contexts = contexts[torch.randperm(contexts.shape[0], generator=gen)][: cfg.contexts]
    lens = TunedLens.for_model(model, cfg.sublayers)
    final_hook = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    hooks = [*lens.hooks, final_hook]
    weight = model.unembed.weight
    weight = weight.to(torch.bfloat16) if cfg.precision == "bfloat16" else weight
    cap = model.unembed.softcap
    opt = torch.optim.AdamW([lens.weight, lens.bias], lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = min(cfg.steps, contexts.shape[0] // cfg.contexts_per_step)
    factor = lambda s: schedule_factor(s, steps, cfg.warmup_fraction)  # noqa: E731
    n_tr = len(lens.hooks)
    history, per_translator, done, spent, resumed = [], torch.zeros(n_tr), 0, 0.0, []
    identity = json.loads(json.dumps({"model": model.name, "fingerprint": model.fingerprint, "train": cfg.to_dict(),
                                      "hooks": lens.hooks, "contexts_sha256": ckpt.contexts_digest(contexts)}))  # fmt: skip
    if checkpoint is not None:
        state = ckpt.load_checkpoint(Path(checkpoint), identity)
        if state is not None:
            per_translator = ckpt.restore_state(state.tensors, lens, opt, gen)
            done, history, spent, resumed = state.step, state.history, state.seconds, [*state.resumed, state.step]
            log.info("mechscope: resuming tuned-lens training at step %d of %d from %s", done, steps, checkpoint)
    # the learning rate is a function of the step: a resumed run sets the one the uninterrupted run has there
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    if done:
        sched.last_epoch = done
        for group, base in zip(opt.param_groups, sched.base_lrs):
            group["lr"] = base * factor(done)
        sched._last_lr = [g["lr"] for g in opt.param_groups]

    def save(step: int) -> None:
        tensors = ckpt.pack_state(lens, opt, per_translator, gen)
        ckpt.save_checkpoint(Path(checkpoint), identity, step, tensors, history,
                             spent + time.perf_counter() - start, resumed)  # fmt: skip

    frozen = [p for p in model.hf.parameters() if p.requires_grad]
    for p in frozen:  # the model stays fixed; restored in finally
        p.requires_grad_(False)
    tail = max(1, steps // 10)
    seq = contexts.shape[1]
    try:
        with flush_denormals(model.device):  # subnormals cost ~10x on Intel cores (per-thread, restored)
            bar = tqdm(range(done, steps), desc="mechscope: training tuned lens", unit="step", disable=not progress,
                       initial=done, total=steps)  # fmt: skip
            for step in bar:
                batch = contexts[step * cfg.contexts_per_step : (step + 1) * cfg.contexts_per_step]
                with torch.no_grad():
                    rows = model.collect(batch, hooks)  # stops after the last block: no logits
                flat = {h: t.reshape(-1, t.shape[-1]) for h, t in rows.items()}  # [batch·seq, d]
                non_bos = torch.arange(batch.numel()).view(batch.shape)[:, 1:].reshape(-1)
                pick = non_bos[torch.randperm(non_bos.numel(), generator=gen)[: cfg.positions_per_step]].to(model.device)
                if step == 0:  # bias unit: each row's residual RMS on the first batch
                    with torch.no_grad():
                        lens.scale.copy_(torch.stack([flat[h][pick].pow(2).mean().sqrt() for h in lens.hooks]))
                with torch.no_grad():
                    p, entropy = _targets(model, flat[final_hook][pick])
                opt.zero_grad(set_to_none=True)
                step_kl = torch.zeros(n_tr)
                for g0 in range(0, n_tr, cfg.translators_per_pass):
                    idx = torch.arange(g0, min(g0 + cfg.translators_per_pass, n_tr), device=model.device)
                    h = torch.stack([flat[lens.hooks[i]][pick] for i in idx.tolist()])  # [g, m, d]
                    normed = model.unembed.norm(lens.translate_index(h, idx))
                    kl = _KLFromNormed.apply(normed, weight, p, entropy, cap)  # [g, m]
                    kl.mean(-1).sum().backward()
                    step_kl[idx.cpu()] = kl.detach().mean(-1).cpu()
                opt.step()
                sched.step()
                history.append(float(step_kl.mean()))
                if step >= steps - tail:
                    per_translator += step_kl / tail
                bar.set_postfix(kl=f"{history[-1]:.3f}")
                if checkpoint is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
                    save(step + 1)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    lens.requires_grad_(False)
    seconds = spent + time.perf_counter() - start
    lens.info = {
        "train": cfg.to_dict(),
        "result": {
            "steps": steps, "tokens": steps * cfg.contexts_per_step * seq,
            "positions_per_translator": steps * cfg.positions_per_step, "seconds": round(seconds, 1),
            "resumed_at_steps": resumed,
            "kl_history": [round(x, 4) for x in history],
            "final_train_kl": {h: round(float(v), 4) for h, v in zip(lens.hooks, per_translator)},
        },
    }  # fmt: skip
    log.info("mechscope: tuned lens trained in %.0f s", seconds)
    return lens


def schedule_factor(step: int, steps: int, warmup_fraction: float) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then linear decay to 0."""
    warm = max(1, int(warmup_fraction * steps))
    return min((step + 1) / warm, max(0.0, (steps - step) / max(1, steps - warm)))
