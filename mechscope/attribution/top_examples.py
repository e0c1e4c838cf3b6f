"""Max-activating examples for every unit of a hook, from one streamed pass over a corpus.

A *unit* is a coordinate of the hook's last axis (an MLP neuron at ``mlp.hook_pre/post``, a residual
dimension at ``hook_resid_*`` / ``hook_*_out``), or for per-head hooks (``attn.hook_z/q/k/v``) a head,
whose activation is the norm of its vector. A context's score for a unit is its largest (top) or smallest
(bottom) activation over the context's positions, BOS excluded (its activations are outliers on most
models and say nothing about the text).

The pass keeps a running top-k and bottom-k for *all* units at once: each batch's ``[context, pos,
unit]`` activations are reduced over positions and merged with the running ``[k, unit]`` tables by one
``topk`` along the context axis, carrying each kept context's per-token activations along. The result
(scores, context ids, positions, per-token activations and the contexts' token ids) is saved as an
artifact keyed by the model fingerprint, the hook and the corpus settings, so asking for another unit of
the same hook is a file read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechscope.attribution.config import TopExamplesConfig
from mechscope.errors import HookNameError, OutOfRangeError

KIND = "top-examples"


def unit_values(act: Tensor, spec) -> Float[Tensor, "batch pos unit"]:
    """A hook's activation as ``[batch, pos, unit]``: heads' vector norms for per-head hooks."""
    if spec.kind == "pattern":
        raise HookNameError(f"{spec.name} is an attention pattern: top examples need a hook with units "
                            "(try its attn.hook_z for per-head norms)")  # fmt: skip
    if spec.head_axis is not None:
        return act.float().norm(dim=-1)
    return act.float()


def unit_count(model, hook: str) -> int:
    spec = model.spec(hook)
    dims = vars(model.cfg.dims)
    if spec.kind == "pattern":
        unit_values(None, spec)
    return dims[spec.shape[2]] if spec.head_axis is not None else dims[spec.last_dim]


class RunningTopK:
    """Top-k (largest scores) per unit over a stream of ``[context, pos, unit]`` batches, vectorised over
    units, carrying the kept contexts' per-token activations."""

    def __init__(self, k: int, largest: bool = True):
        self.k, self.largest = k, largest
        self.score = self.context = self.position = self.acts = None  # [k, unit], ..., [k, unit, pos]

    def update(self, acts: Float[Tensor, "batch pos unit"], first_context: int) -> None:
        body = acts[:, 1:]  # BOS excluded from the ranking
        score, pos = (body.max(1) if self.largest else body.min(1))  # [batch, unit]
        pos = pos + 1
        ctx = torch.arange(first_context, first_context + acts.shape[0]).unsqueeze(1).expand_as(score)
        per_tok = acts.permute(0, 2, 1)  # [batch, unit, pos]
        if self.score is not None:
            score = torch.cat([self.score, score])
            pos = torch.cat([self.position, pos])
            ctx = torch.cat([self.context, ctx])
            per_tok = torch.cat([self.acts, per_tok])
        k = min(self.k, score.shape[0])
        self.score, idx = score.topk(k, dim=0, largest=self.largest)  # [k, unit]
        self.position = pos.gather(0, idx)
        self.context = ctx.gather(0, idx)
        self.acts = per_tok.gather(0, idx.unsqueeze(-1).expand(-1, -1, per_tok.shape[-1]))


@dataclass
class TopExamples:
    """Top/bottom contexts of every unit of one hook (see the module docstring)."""

    hook: str
    n_units: int
    contexts: Int[Tensor, "context pos"]
    top: dict[str, Tensor]
    bottom: dict[str, Tensor]
    meta: dict
    seconds: float = 0.0
    cached: bool = False

    def unit(self, model, unit: int) -> dict:
        """One unit's top and bottom contexts: tokens (decoded strings), per-token activations, the max position."""
        if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < self.n_units:
            raise OutOfRangeError(f"unit {unit} out of range: {self.hook} has {self.n_units} units (0..{self.n_units - 1})")

        def rows(table):
            out = []
            for j in range(table["score"].shape[0]):
                c = int(table["context"][j, unit])
                out.append({"context": c, "position": int(table["position"][j, unit]),
                            "activation": float(table["score"][j, unit]),
                            "tokens": model.to_str_tokens(self.contexts[c].tolist()),
                            "activations": [round(float(v), 5) for v in table["acts"][j, unit]]})  # fmt: skip
            return out

        return {"hook": self.hook, "unit": unit, "n_units": self.n_units, "top": rows(self.top),
                "bottom": rows(self.bottom), **{k: self.meta[k] for k in ("tokens", "k", "corpus", "unit_kind")},
                "cached": self.cached, "seconds": round(self.seconds, 3)}  # fmt: skip


def default_cache_dir(model, hook: str, cfg: TopExamplesConfig) -> Path:
    from mechscope.model.convert import home

    return home() / "top_examples" / model.fingerprint / f"{hook}-{cfg.key(model.fingerprint, hook)}"


@torch.no_grad()
def scan(model, hook: str, cfg: TopExamplesConfig, progress: bool | Callable[[int, int], None] = False) -> TopExamples:
    """One streamed pass: running top-k / bottom-k for every unit of ``hook``. ``progress``: True for a
    tqdm bar, or ``progress(done_tokens, total_tokens)`` called after each batch."""
    from mechscope.data.corpus import corpus_batches

    spec = model.spec(hook)
    n_units = unit_count(model, hook)
    t0 = time.perf_counter()
    top, bottom = RunningTopK(cfg.k, True), RunningTopK(cfg.k, False)
    contexts, seen = [], 0
    bar, report = None, progress if callable(progress) else None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.tokens, desc=f"mechscope: top examples at {hook}", unit="tok", unit_scale=True, leave=False)
    for batch in corpus_batches(model.tokenizer, cfg.corpus, "all", cfg.batch_size, cfg.tokens, progress=progress is True):
        acts = unit_values(model.collect(batch, [hook])[hook], spec).cpu()
        top.update(acts, seen)
        bottom.update(acts, seen)
        contexts.append(batch.to(torch.int32))
        seen += batch.shape[0]
        if bar is not None:
            bar.update(batch.numel())
        if report is not None:
            report(seen * cfg.corpus.seq_len, cfg.tokens)
    if bar is not None:
        bar.close()
    meta = {"hook": hook, "n_units": n_units, "tokens": seen * cfg.corpus.seq_len, "k": cfg.k,
            "corpus": cfg.corpus.to_dict(), "unit_kind": "head (norm of its vector)" if spec.head_axis is not None
            else spec.last_dim, "model": model.name, "fingerprint": model.fingerprint}  # fmt: skip
    as_dict = lambda r: {"score": r.score, "context": r.context, "position": r.position, "acts": r.acts}  # noqa: E731
    return TopExamples(hook, n_units, torch.cat(contexts), as_dict(top), as_dict(bottom), meta,
                       time.perf_counter() - t0)  # fmt: skip


def save(res: TopExamples, directory: Path, fingerprint: str) -> Path:
    from mechscope.io import write_artifact

    tensors = {"contexts": res.contexts}
    for side, table in (("top", res.top), ("bottom", res.bottom)):
        tensors.update({f"{side}.{k}": v.contiguous() for k, v in table.items()})
    return write_artifact(directory, tensors, res.meta, kind=KIND, fingerprint=fingerprint)


def load(directory: Path, fingerprint: str) -> TopExamples:
    from mechscope.io import read_artifact

    tensors, meta = read_artifact(directory, KIND, fingerprint, fix="delete the folder to rescan")
    side = lambda s: {k: tensors[f"{s}.{k}"] for k in ("score", "context", "position", "acts")}  # noqa: E731
    return TopExamples(meta["hook"], meta["n_units"], tensors["contexts"], side("top"), side("bottom"), meta, cached=True)


def top_examples(model, hook: str, unit: int | None = None, config: TopExamplesConfig | None = None, *,
                 cache_dir: str | Path | None = None, cache: bool = True, rescan: bool = False,
                 progress: bool | Callable[[int, int], None] = False) -> TopExamples:  # fmt: skip
    """Top examples for every unit of ``hook`` (scanned once, then read from the cache).

    ``unit`` is only checked here (so a bad unit fails before a scan); read it with ``.unit(model, unit)``.
    ``cache``: read/write the result under ``cache_dir``; ``rescan``: scan even if a cached result exists.
    """
    cfg = config or TopExamplesConfig()
    hook = model.spec(hook).name
    n_units = unit_count(model, hook)
    if unit is not None and (isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < n_units):
        raise OutOfRangeError(f"unit {unit} out of range: {hook} has {n_units} units (0..{n_units - 1})")
    directory = Path(cache_dir).expanduser() if cache_dir else default_cache_dir(model, hook, cfg)
    if cache and not rescan and _has_marker(directory):
        t0 = time.perf_counter()
        res = load(directory, model.fingerprint)
        res.seconds = time.perf_counter() - t0
        return res
    res = scan(model, hook, cfg, progress)
    if cache:
        save(res, directory, model.fingerprint)
    return res


def _has_marker(directory: Path) -> bool:
    from mechscope.io import read_marker

    return directory.is_dir() and read_marker(directory) is not None


def brute_force(acts: Float[Tensor, "context pos unit"], k: int, largest: bool = True) -> tuple[Tensor, Tensor]:
    """Reference for tests: scores and context ids of the top-k contexts per unit by a full sort."""
    body = acts[:, 1:]
    score = body.max(1).values if largest else body.min(1).values  # [context, unit]
    order = score.argsort(dim=0, descending=largest)[:k]
    return score.gather(0, order), order
