"""Training several SAEs in one pass over the same activations, checkpointed, resumable, data parallel.

    >>> from mechscope.sae.train import ModelSource, train_saes                 # doctest: +SKIP
    >>> cfgs = [SAEConfig(width=w, k=32) for w in (1024, 4096)]                   # doctest: +SKIP
    >>> res = train_saes(ModelSource(model, "blocks.6.hook_resid_post"), cfgs, SAETrainConfig(tokens=200_000))

Sources: :class:`StoreSource` (an activation store, shuffled) or :class:`ModelSource` (activations
streamed straight from the model over a corpus, in corpus order, the forward cut after the last hook
needed). Each step draws ``batch_tokens`` rows (BOS positions left out) and every SAE takes one Adam
step on them.

Scale: inputs and targets are multiplied by ``sqrt(d / E|x|^2)`` (estimated on the first batch) so
hyper-parameters mean the same at every hook; the saved SAE has that folded back in
(:func:`mechscope.sae.base.folded`), so it reads and writes raw activations.

Checkpoints (``<out>.checkpoint``, an io artifact of kind :data:`CHECKPOINT_KIND`) hold the weights,
Adam moments, dead-latent counters and scales of every SAE plus the step; running the same training
again resumes from it bit for bit on CPU (the data stream is a function of the step). Under
``torchrun`` each rank trains on its slice of every global batch and gradients are averaged
(all-reduce), so every rank holds the same SAEs; rank 0 writes.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mechscope.data.corpus import CorpusConfig
from mechscope.errors import CheckpointMismatchError, ConfigError, TrainingError
from mechscope.sae.base import SAE
from mechscope.sae.config import SAEConfig, SAETrainConfig
from mechscope.runtime import rank_world
from mechscope.sae.store import hash_seed

CHECKPOINT_KIND = "sae-checkpoint"
ADAM_KEYS = ("exp_avg", "exp_avg_sq", "step")


# ------------------------------------------------------------------------------------------ sources
@dataclass
class StoreSource:
    """Activations from an :class:`~mechscope.sae.store.ActivationStore` (shuffled, endless)."""

    store: object
    hook: str
    target: str | None = None

    def describe(self) -> dict:
        return {"store": str(self.store.path), "store_fingerprint": self.store.fingerprint, "hook": self.hook,
                "target": self.target or self.hook}  # fmt: skip

    @property
    def fingerprint(self) -> str | None:
        return self.store.fingerprint

    @property
    def model_name(self) -> str | None:
        return self.store.model_name

    def dims(self) -> tuple[int, int]:
        self.store.check_hook(self.hook)
        self.store.check_hook(self.target or self.hook)
        return self.store.dims[self.hook], self.store.dims[self.target or self.hook]

    def batches(self, tc: SAETrainConfig, start: int, rank: int, world: int) -> Iterator[tuple[Tensor, Tensor]]:
        if not tc.skip_bos and self.store.config.skip_bos:
            raise ConfigError(f"the store at {self.store.path} left BOS out: train with skip_bos, or harvest with BOS")
        return self.store.batches(self.hook, self.target, tc.batch_tokens, seed=tc.seed, start_batch=start,
                                  rank=rank, world=world)  # fmt: skip


@dataclass
class TensorSource:
    """Activations held in memory (``x`` rows, optional ``y`` targets): toy models, tests, notebooks.
    Each epoch visits the rows in a permutation drawn from ``(seed, epoch)``."""

    x: Tensor
    y: Tensor | None = None
    hook: str = "x"
    target: str | None = None
    fingerprint: str | None = None
    model_name: str | None = None

    def describe(self) -> dict:
        import hashlib

        h = hashlib.sha256(self.x.detach().cpu().float().numpy().tobytes())
        if self.y is not None:
            h.update(self.y.detach().cpu().float().numpy().tobytes())
        return {"tensors": h.hexdigest()[:16], "rows": int(self.x.shape[0]), "hook": self.hook,
                "target": self.target or self.hook}  # fmt: skip

    def dims(self) -> tuple[int, int]:
        if self.x.ndim != 2 or (self.y is not None and (self.y.ndim != 2 or self.y.shape[0] != self.x.shape[0])):
            raise ConfigError("TensorSource needs x [rows, d_in] and y [rows, d_out] with as many rows")
        return int(self.x.shape[1]), int((self.y if self.y is not None else self.x).shape[1])

    def batches(self, tc: SAETrainConfig, start: int, rank: int, world: int) -> Iterator[tuple[Tensor, Tensor]]:
        from mechscope.sae.store import hash_seed

        n, gb = self.x.shape[0], tc.batch_tokens * world
        if n < gb:
            raise ConfigError(f"{n} rows cannot fill one batch of {gb}: lower batch_tokens")
        per_epoch = n // gb
        step = start
        while True:
            epoch, i = divmod(step, per_epoch)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(hash_seed(tc.seed, epoch)))
            idx = perm[i * gb + rank * tc.batch_tokens:i * gb + (rank + 1) * tc.batch_tokens]
            xb = self.x[idx].float()
            yield xb, (self.y[idx].float() if self.y is not None else xb)
            step += 1


@dataclass
class ModelSource:
    """Activations streamed from ``model`` over ``corpus`` (train split), in corpus order."""

    model: object
    hook: str
    target: str | None = None
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    batch_contexts: int = 16
    """Contexts per model forward."""
    contexts: Tensor | None = None
    """Token ids ``[n, seq_len]`` (BOS first) to run instead of the corpus, cycled."""
    forward_dtype: str = "float32"
    """``bfloat16`` runs the model's matmuls under bf16 autocast (AMX / AVX-512-BF16 CPUs, CUDA): faster,
    and the activations differ from float32 ones by bf16 rounding (check the SAE on float32 activations)."""

    def describe(self) -> dict:
        import hashlib

        text = ({"contexts": hashlib.sha256(self.contexts.to(torch.int64).numpy().tobytes()).hexdigest()[:16]}
                if self.contexts is not None else {"corpus": self.corpus.to_dict()})  # fmt: skip
        return {"model": self.model.name, **text, "hook": self.hook, "target": self.target or self.hook,
                **({"forward_dtype": self.forward_dtype} if self.forward_dtype != "float32" else {})}

    @property
    def fingerprint(self) -> str:
        return self.model.fingerprint

    @property
    def model_name(self) -> str:
        return self.model.name

    def dims(self) -> tuple[int, int]:
        shapes = self.model.hook_shapes()
        names = [self.model.spec(h).name for h in (self.hook, self.target or self.hook)]
        for n in names:
            if len(shapes[n]) != 3 or shapes[n][:2] != ("batch", "pos"):
                raise ConfigError(f"{n} has shape {shapes[n]}: an SAE reads a [batch, pos, d] hook")
        return int(shapes[names[0]][-1]), int(shapes[names[1]][-1])

    def batches(self, tc: SAETrainConfig, start: int, rank: int, world: int) -> Iterator[tuple[Tensor, Tensor]]:
        from mechscope.data.corpus import corpus_batches

        model, hook, target = self.model, self.hook, self.target or self.hook
        first = 1 if tc.skip_bos else 0
        per_ctx = (self.contexts.shape[1] if self.contexts is not None else self.corpus.seq_len) - first
        # contexts are dealt to ranks in blocks of batch_contexts; rank r skips what earlier steps used
        skip_rows = start * tc.batch_tokens
        skip_ctx, drop = divmod(skip_rows, per_ctx)
        xs: list[Tensor] = []
        ys: list[Tensor] = []
        have = 0
        seen = 0
        names = [hook] if target == hook else [hook, target]
        while True:
            if self.contexts is not None:
                stream = self.contexts.split(self.batch_contexts)
            else:
                stream = corpus_batches(model.tokenizer, self.corpus, "train", self.batch_contexts, progress=False)
            got_any = False
            for j, ctx in enumerate(stream):
                got_any = True
                if world > 1 and j % world != rank:
                    continue
                if seen + ctx.shape[0] <= skip_ctx:
                    seen += ctx.shape[0]
                    continue
                if seen < skip_ctx:
                    ctx = ctx[skip_ctx - seen:]
                seen += ctx.shape[0]
                with torch.no_grad(), forward_autocast(model, self.forward_dtype):
                    cache = model.collect(ctx, names, prepend_bos=False)
                x = cache[hook][:, first:].reshape(-1, cache[hook].shape[-1]).float()
                y = cache[target][:, first:].reshape(-1, cache[target].shape[-1]).float() if target != hook else x
                if drop:
                    x, y, drop = x[drop:], y[drop:], 0
                xs.append(x)
                ys.append(y)
                have += x.shape[0]
                while have >= tc.batch_tokens:
                    X = torch.cat(xs) if len(xs) > 1 else xs[0]
                    Y = X if target == hook else (torch.cat(ys) if len(ys) > 1 else ys[0])
                    xb = X[:tc.batch_tokens]
                    yield xb, (xb if target == hook else Y[:tc.batch_tokens])
                    xs, ys = [X[tc.batch_tokens:]], [Y[tc.batch_tokens:]]
                    have -= tc.batch_tokens
            if not got_any:
                raise ConfigError("the corpus yields no training context")
            # the corpus is exhausted: go round again is exhausted: go round again (repeats text; the CLI warns)


def forward_autocast(model, forward_dtype: str):
    """A context running ``model``'s matmuls in ``forward_dtype`` (bf16 autocast), or nothing for float32."""
    import contextlib

    if forward_dtype == "float32":
        return contextlib.nullcontext()
    if forward_dtype != "bfloat16":
        raise ConfigError(f"forward_dtype must be float32 or bfloat16, got {forward_dtype!r}")
    return torch.autocast(model.device.type, dtype=torch.bfloat16)


# ----------------------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    sae: SAE
    """The trained SAE (raw activations: scales folded in)."""
    path: Path | None
    history: list[dict]
    seconds: float
    tokens: int

    def to_dict(self) -> dict:
        last = self.history[-1] if self.history else {}
        return {"sae": self.sae.cfg.to_dict(), "path": str(self.path) if self.path else None, "tokens": self.tokens,
                "seconds": round(self.seconds, 2), "final": last, "history": self.history}  # fmt: skip


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(f"{out.name}.checkpoint")


def _all_reduce(t: Tensor, op: str = "sum") -> Tensor:
    import torch.distributed as dist

    dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
    return t


def _identity(source, cfgs: list[SAEConfig], tc: SAETrainConfig, world: int) -> dict:
    return {"source": source.describe(), "fingerprint": source.fingerprint, "saes": [c.to_dict() for c in cfgs],
            "train": tc.to_dict(), "world": world}  # fmt: skip


# ---------------------------------------------------------------------------------------- training
class _Trainer:
    """State of one SAE in training: module, optimiser, dead-latent counters."""

    def __init__(self, cfg: SAEConfig, tc: SAETrainConfig, info: dict, device: torch.device, build=None):
        if build is None:
            from mechscope.sae.artifact import build

        self.cfg = cfg
        self.sae = build(cfg, info).to(device)
        lr, s = tc.lr_for(cfg), self.sae
        scale = {id(s.W_enc): tc.enc_lr_scale, id(s.b_enc): tc.bias_lr_scale, id(s.b_dec): tc.bias_lr_scale}
        groups = [{"params": [p], "lr": lr * scale.get(id(p), 1.0), "base_lr": lr * scale.get(id(p), 1.0)}
                  for p in s.parameters()]  # fmt: skip
        self.opt = torch.optim.Adam(groups, betas=(tc.adam_beta1, 0.999), eps=1e-8, fused=device.type in ("cpu", "cuda"))
        self.since_fired = torch.zeros(cfg.width, dtype=torch.int64, device=device)
        self.dead_after = tc.dead_after(cfg)

    def state(self) -> dict[str, Tensor]:
        out = {f"param.{n}": p.detach() for n, p in self.sae.named_parameters()}
        out.update({f"extra.{k}": v for k, v in self.sae.extra_tensors().items()})
        for n, p in self.sae.named_parameters():
            st = self.opt.state.get(p, {})
            for key in ADAM_KEYS:
                if key in st:
                    out[f"adam.{n}.{key}"] = torch.as_tensor(st[key])
        out["since_fired"] = self.since_fired
        return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}

    def load(self, t: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.sae.named_parameters():
                p.copy_(t[f"param.{n}"])
        self.sae.load_extra({k[6:]: v for k, v in t.items() if k.startswith("extra.")})
        for n, p in self.sae.named_parameters():
            if f"adam.{n}.step" in t:
                self.opt.state[p] = {key: t[f"adam.{n}.{key}"].clone().to(p.device) for key in ADAM_KEYS}
        self.since_fired.copy_(t["since_fired"])


def train_saes(source, cfgs: list[SAEConfig], tc: SAETrainConfig = SAETrainConfig(), outs: list[Path] | None = None, *,
               progress: bool = True, fresh: bool = False, device: str | torch.device = "cpu",
               force: bool = False, build=None) -> list[TrainResult]:  # fmt: skip
    """Train one SAE per config on the same activation stream; save each to ``outs`` (if given).

    ``build(cfg, info) -> SAE`` makes each module (default :func:`mechscope.sae.artifact.build`): an SAE
    subclass with its own selection or loss, such as the crosscoder of :mod:`mechscope.diff.crosscoder`,
    trains here unchanged (save it with its own writer: ``outs`` writes the SAE layout).

    With ``outs``, a checkpoint beside the first output (``<out>.checkpoint``) is written every
    ``tc.checkpoint_every`` steps and resumed from when the same training runs again (``fresh``
    deletes it). Raises :class:`TrainingError` at the first step with non-finite activations or loss.
    """
    from mechscope.io import check_output_dir, read_artifact, verify_artifact, write_artifact
    from mechscope.runtime import flush_denormals

    if not cfgs:
        raise ConfigError("train_saes needs at least one SAE config")
    device = torch.device(device)
    if device.type == "cpu" and not isinstance(source, ModelSource):
        from mechscope.runtime import return_large_frees

        # per-step temporaries (>= 8 MiB) go back to the system: flat peak memory. Not with a model in the
        # loop: its forward reallocates many MB-sized buffers (bf16 weight casts), which would page-fault each time
        return_large_frees(8 << 20)
    rank, world = rank_world()
    d_in, d_out = source.dims()
    target = source.target or source.hook
    for c in cfgs:
        if c.d_in != d_in or c.out_dim != d_out:
            raise ConfigError(f"the SAE config says d_in={c.d_in}, d_out={c.out_dim} but {source.hook}"
                              f"{' -> ' + target if target != source.hook else ''} is {d_in} -> {d_out} wide")  # fmt: skip
        if (target != source.hook) != c.transcoder:
            raise ConfigError("a transcoder reads one hook and reconstructs another: give both --hook and --target"
                              if c.transcoder else "input and target hooks differ: train with --transcoder")  # fmt: skip
    outs = [Path(o) for o in outs] if outs else None
    if outs is not None:
        if len(outs) != len(cfgs):
            raise ConfigError("give one output folder per SAE config")
        for o in outs:
            check_output_dir(o, "sae", force=force)
    ckpt = checkpoint_dir(outs[0]) if outs else None
    identity = _identity(source, cfgs, tc, world)
    info = {"model": source.model_name, "fingerprint": source.fingerprint, "hook": source.hook, "target": target,
            "positions": "all but BOS" if tc.skip_bos else "all", "train": tc.to_dict()}  # fmt: skip
    trainers = [_Trainer(c, tc, dict(info), device, build) for c in cfgs]

    start, history, seconds = 0, [], 0.0
    window: list[list[dict]] = [[] for _ in trainers]  # per-step metrics since the last log row
    scales: tuple[float, float] | None = None
    if ckpt is not None and fresh and rank == 0 and ckpt.exists():
        verify_artifact(ckpt, CHECKPOINT_KIND, verify=False)  # only ever delete our own checkpoint
        shutil.rmtree(ckpt)
    if ckpt is not None and ckpt.exists() and not fresh:
        fix = "rerun with --fresh to start over"
        tensors, meta = read_artifact(ckpt, CHECKPOINT_KIND, fix=fix)
        if meta.get("identity") != identity:
            raise CheckpointMismatchError(f"{ckpt} is a checkpoint of another training (other SAEs, settings or "
                                          f"activations): {fix}, or choose another --out")  # fmt: skip
        for i, t in enumerate(trainers):
            t.load({k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"sae{i}.")})
        start, history, seconds = int(meta["step"]), list(meta["history"]), float(meta["seconds"])
        window = [list(w) for w in meta.get("window", window)]
        scales = (float(meta["scale_in"]), float(meta["scale_out"]))

    steps = tc.steps_for(world)
    from mechscope.runtime import fast_bf16

    use_bf16 = tc.matmul_dtype == "bfloat16" or (tc.matmul_dtype == "auto" and fast_bf16(device))
    select_dtype = torch.bfloat16 if use_bf16 else None
    stream = source.batches(tc, start, rank, world)
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc=f"mechscope: train {len(cfgs)} SAE{'s' * (len(cfgs) > 1)}",
                   unit="step")  # fmt: skip

    def save_checkpoint(step: int, elapsed: float) -> None:
        if ckpt is None or rank != 0:
            return
        tensors = {f"sae{i}.{k}": v for i, t in enumerate(trainers) for k, v in t.state().items()}
        meta = {"identity": identity, "step": step, "history": history, "seconds": elapsed, "window": window,
                "scale_in": scales[0], "scale_out": scales[1]}  # fmt: skip
        write_artifact(ckpt, tensors, meta, kind=CHECKPOINT_KIND, fingerprint=source.fingerprint)

    t0 = time.perf_counter()
    with flush_denormals(device):
        step = start
        for step in range(start, steps):
            x, y = next(stream)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
                raise TrainingError(f"non-finite activations in the batch of step {step} (tokens "
                                    f"{step * tc.batch_tokens}..{(step + 1) * tc.batch_tokens - 1}): "
                                    "the store or the model is broken; harvest again or check the model")  # fmt: skip
            if scales is None:
                scales = _estimate_scales(x, y, world)
                sample = y * scales[1]
                if world > 1:  # the global first batch, as one rank would see it
                    import torch.distributed as dist

                    parts = [torch.empty_like(sample) for _ in range(world)]
                    dist.all_gather(parts, sample.contiguous())
                    sample = torch.cat(parts)
                for t in trainers:  # each SAE its own stream (shared rows would fake matches across widths)
                    seed = hash_seed(tc.seed, t.cfg.arch, t.cfg.width, t.cfg.k)
                    t.sae.init_weights(torch.Generator().manual_seed(seed), sample, tc.b_dec_init, x)
            same = y is x
            x = x * scales[0]
            y = x if same else y * scales[1]
            for i, t in enumerate(trainers):
                for g in t.opt.param_groups:
                    g["lr"] = g["base_lr"] * tc.lr_factor(step, steps)
                dead = t.since_fired >= t.dead_after
                out = t.sae.train_step(x, y, tc, dead, select_dtype)
                if not torch.isfinite(out.loss):
                    raise TrainingError(f"the loss of SAE {t.cfg.label()} became {float(out.loss)} at step {step}: "
                                        "lower --lr, or check the activations")  # fmt: skip
                t.opt.zero_grad(set_to_none=True)
                out.loss.backward()
                fired = torch.zeros(t.cfg.width, dtype=torch.bool, device=device)
                fired[out.fired] = True
                if world > 1:
                    _sync_grads(t.sae, world)
                    fired = _all_reduce(fired.to(torch.uint8), "max").bool()
                if t.cfg.unit_decoder:
                    t.sae.project_decoder_grad()
                t.opt.step()
                if t.cfg.unit_decoder:
                    t.sae.normalize_decoder()
                if world > 1 and hasattr(t.sae, "threshold_steps"):
                    _all_reduce(t.sae.threshold, "sum").div_(world)
                t.since_fired += x.shape[0] * world
                t.since_fired[fired] = 0
                window[i].append({"fvu": float(out.terms.get("fvu", out.loss)), "l0": float(out.l0),
                                  **{k: float(v) for k, v in out.terms.items() if k != "fvu"}})  # fmt: skip
            done = step + 1
            if done % tc.log_every == 0 or done == steps:
                elapsed = seconds + time.perf_counter() - t0
                row = {"step": done, "tokens": done * tc.batch_tokens * world, "seconds": round(elapsed, 2)}
                row["saes"] = [_mean_terms(win) | {"dead_fraction": float((t.since_fired >= t.dead_after).float().mean())}
                               for win, t in zip(window, trainers)]  # fmt: skip
                history.append(row)
                window = [[] for _ in trainers]
                if bar is not None:
                    s0 = row["saes"][0]
                    bar.set_postfix(fvu=f"{s0['fvu']:.3f}", l0=f"{s0['l0']:.1f}", dead=f"{s0['dead_fraction']:.1%}",
                                    tok_s=f"{(done - start) * tc.batch_tokens * world / (time.perf_counter() - t0):.0f}")  # fmt: skip
            if bar is not None:
                bar.update(1)
            if tc.checkpoint_every and done % tc.checkpoint_every == 0 and done < steps:
                save_checkpoint(done, seconds + time.perf_counter() - t0)
    if bar is not None:
        bar.close()
    elapsed = seconds + time.perf_counter() - t0
    results = []
    for i, t in enumerate(trainers):
        t.sae.info.update(scale_in=scales[0], scale_out=scales[1])
        from mechscope.sae.base import folded

        sae = folded(t.sae, scales[0], scales[1]).eval()
        last = history[-1]["saes"][i] if history else {}
        sae.info["training"] = {"tokens": steps * tc.batch_tokens * world, "steps": steps, "seconds": round(elapsed, 2),
                                "world": world, "final": last, "source": source.describe()}  # fmt: skip
        path = None
        if outs is not None and rank == 0:
            from mechscope.sae.artifact import save

            path = save(sae, outs[i], force=force)
        results.append(TrainResult(sae, path, [_one(h, i) for h in history], elapsed, steps * tc.batch_tokens * world))
    if ckpt is not None and rank == 0 and ckpt.exists():
        shutil.rmtree(ckpt)
    return results


def _mean_terms(window: list[dict]) -> dict:
    """Each term's mean over the steps that reported it (AuxK only reports while latents are dead)."""
    keys = dict.fromkeys(k for w in window for k in w)
    return {k: sum(w[k] for w in window if k in w) / sum(1 for w in window if k in w) for k in keys}


def _one(row: dict, i: int) -> dict:
    return {"step": row["step"], "tokens": row["tokens"], "seconds": row["seconds"], **row["saes"][i]}


def _estimate_scales(x: Tensor, y: Tensor, world: int) -> tuple[float, float]:
    """``sqrt(d / E|v|^2)`` for inputs and targets (averaged over ranks)."""
    ms = torch.stack([x.double().pow(2).sum(1).mean(), y.double().pow(2).sum(1).mean()])
    if world > 1:
        _all_reduce(ms, "sum").div_(world)
    if not (ms > 0).all():
        raise TrainingError("the activations of the first batch are all zero: nothing to train on")
    return float((x.shape[1] / ms[0]).sqrt()), float((y.shape[1] / ms[1]).sqrt())


def _sync_grads(sae: SAE, world: int) -> None:
    grads = [p.grad for p in sae.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    _all_reduce(flat, "sum").div_(world)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
