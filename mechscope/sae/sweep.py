"""A width sweep: SAEs of several widths trained in one pass over the same activations at matched L0
(the same ``k``), each evaluated on held-out text, and their latents matched across widths by decoder
cosine, to watch features split as the dictionary grows.

    >>> from mechscope.sae.sweep import sweep                                          # doctest: +SKIP
    >>> res = sweep(model, ModelSource(model, "blocks.6.hook_resid_post"),             # doctest: +SKIP
    ...             [SAEConfig(width=w, k=32) for w in (1024, 4096)], SAETrainConfig(tokens=200_000))
    >>> print(res.table())                                                             # doctest: +SKIP

Matching (:func:`match_latents`), for each pair of consecutive widths (``small`` → ``large``), on
unit-normalised decoder rows (each latent's output direction) of the latents alive on the evaluation
tokens (dead ones have no meaning and are left out of both sides):

- a small latent's **max cosine** is its best match among the large SAE's latents;
- each large latent has one **parent**: the small latent it is most similar to; it is a **child** of
  that parent when their cosine exceeds ``threshold`` (0.6);
- a small latent **splits** when it has two or more children; a large latent with no parent above the
  threshold is **new** (a direction the small SAE did not have).

Output folder (``out``): one SAE folder per width (``topk-1024-k32`` ...), ``sweep.json``
(:meth:`SweepResult.to_dict`), optionally ``sweep.png``, and mechscope's marker (kind :data:`KIND`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.errors import ConfigError, OutputPathError
from mechscope.sae.config import SPARSE_BY_K, SAEConfig, SAETrainConfig
from mechscope.sae.evaluate import SAEEval, SAEEvalConfig, evaluate_many

KIND = "sae-sweep"
SWEEP_FILE = "sweep.json"
PNG_FILE = "sweep.png"
SPLIT_THRESHOLD = 0.6
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


# ------------------------------------------------------------------------------------------ matching
@dataclass
class LatentMatch:
    """Decoder-cosine matching of a smaller SAE's latents (parents) to a larger one's (children)."""

    small_width: int
    large_width: int
    threshold: float
    max_cos: Tensor
    """``[small]``: each parent's best cosine to a child (NaN for a dead parent)."""
    best: Tensor
    """``[small]``: index of that child (-1 for a dead parent)."""
    parent: Tensor
    """``[large]``: each child's most similar parent (-1 for a dead child)."""
    parent_cos: Tensor
    """``[large]``: its cosine (NaN for a dead child)."""

    @property
    def children(self) -> Tensor:
        """``[small]``: children per parent (large latents whose parent it is, cosine > threshold)."""
        kept = self.parent[(self.parent >= 0) & (self.parent_cos > self.threshold)]
        return torch.bincount(kept, minlength=self.small_width)

    def to_dict(self, top: int = 5) -> dict:
        alive = ~self.max_cos.isnan()
        mc = self.max_cos[alive].double()
        ch = self.children[alive]
        live_children = ~self.parent_cos.isnan()
        hist = torch.histc(mc.clamp(-1, 1), bins=20, min=-1.0, max=1.0) if mc.numel() else torch.zeros(20)
        order = torch.argsort(self.children, descending=True, stable=True)[:top]
        splits = []
        for i in order.tolist():
            if int(self.children[i]) < 2:
                break
            kids = torch.nonzero((self.parent == i) & (self.parent_cos > self.threshold)).flatten()
            kids = kids[torch.argsort(self.parent_cos[kids], descending=True)]
            splits.append({"latent": i, "children": kids.tolist(), "cosines": [round(float(c), 4) for c in self.parent_cos[kids]]})
        return {"small_width": self.small_width, "large_width": self.large_width, "threshold": self.threshold,
                "parents_alive": int(alive.sum()), "children_alive": int(live_children.sum()),
                "max_cos_mean": float(mc.mean()) if mc.numel() else float("nan"),
                "max_cos_quantiles": {str(q): float(mc.quantile(q)) if mc.numel() else float("nan") for q in QUANTILES},
                "max_cos_histogram": {"edges": [round(-1 + 0.1 * i, 1) for i in range(21)], "counts": [int(c) for c in hist]},
                "matched": int((mc > self.threshold).sum()), "split": int((ch >= 2).sum()),
                "children_per_parent": {"0": int((ch == 0).sum()), "1": int((ch == 1).sum()), "2": int((ch == 2).sum()),
                                        "3+": int((ch >= 3).sum())},
                "new": int((live_children & ~(self.parent_cos > self.threshold)).sum()),
                "largest_splits": splits}  # fmt: skip

    def summary(self) -> str:
        d = self.to_dict(top=0)
        return (f"{self.small_width:,} -> {self.large_width:,}: median max cosine {d['max_cos_quantiles']['0.5']:.2f}; "
                f"{d['matched']:,}/{d['parents_alive']:,} latents matched (cos > {self.threshold}), {d['split']:,} split "
                f"into ≥2 children, {d['new']:,}/{d['children_alive']:,} larger latents new")  # fmt: skip


@torch.no_grad()
def match_latents(small: Float[Tensor, "d_sae_small d_out"], large: Float[Tensor, "d_sae_large d_out"],
                  threshold: float = SPLIT_THRESHOLD, small_alive: Tensor | None = None,
                  large_alive: Tensor | None = None, chunk: int = 1 << 24) -> LatentMatch:  # fmt: skip
    """Match decoder rows by cosine (see the module docstring), in row chunks of at most ``chunk``
    cosines: ``[small, large]`` is never held whole."""
    if small.shape[1] != large.shape[1]:
        raise ConfigError(f"decoders of width {small.shape[1]} and {large.shape[1]} cannot be compared")
    n_s, n_l = small.shape[0], large.shape[0]
    sa = torch.ones(n_s, dtype=torch.bool) if small_alive is None else small_alive.bool().cpu()
    la = torch.ones(n_l, dtype=torch.bool) if large_alive is None else large_alive.bool().cpu()
    a = torch.nn.functional.normalize(small.detach().float().cpu(), dim=1)
    b = torch.nn.functional.normalize(large.detach().float().cpu(), dim=1)
    neg = torch.tensor(float("-inf"))
    max_cos = torch.full((n_s,), float("nan"))
    best = torch.full((n_s,), -1, dtype=torch.long)
    parent_cos = torch.full((n_l,), float("-inf"))
    parent = torch.full((n_l,), -1, dtype=torch.long)
    rows = max(1, chunk // max(1, n_l))
    for s0 in range(0, n_s, rows):
        c = a[s0:s0 + rows] @ b.T  # [rows, large]
        c = torch.where(la[None, :], c, neg)
        c = torch.where(sa[s0:s0 + rows, None], c, neg)
        v, j = c.max(1)
        max_cos[s0:s0 + rows] = v
        best[s0:s0 + rows] = j
        cv, ci = c.max(0)
        better = cv > parent_cos  # first parent wins ties across chunks, as one argmax would
        parent_cos = torch.where(better, cv, parent_cos)
        parent = torch.where(better, ci + s0, parent)
    dead_s = ~sa | ~la.any().expand(n_s)
    max_cos[dead_s] = float("nan")
    best[dead_s] = -1
    dead_l = ~la | (parent_cos == float("-inf"))
    parent_cos[dead_l] = float("nan")
    parent[dead_l] = -1
    return LatentMatch(n_s, n_l, threshold, max_cos, best, parent, parent_cos)


# ------------------------------------------------------------------------------------------ the sweep
@dataclass
class SweepResult:
    """Each width's evaluation (and training record) and the matches between consecutive widths."""

    evals: list[SAEEval]
    matches: list[LatentMatch]
    train: list[dict] = field(default_factory=list)
    """Per width: training tokens, seconds and the last logged training metrics."""
    paths: list[str | None] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        rows = []
        for i, e in enumerate(self.evals):
            d = e.to_dict()
            d.pop("density_histogram")
            rows.append({**d, "path": self.paths[i] if i < len(self.paths) else None,
                         "train": self.train[i] if i < len(self.train) else None,
                         "density_histogram": e.density_histogram()})  # fmt: skip
        first = self.evals[0]
        return {"hook": first.hook, "target": first.target, "positions": "all but BOS",
                "widths": [e.width for e in self.evals], "rows": rows, "matches": [m.to_dict() for m in self.matches],
                "seconds": round(self.seconds, 2)}  # fmt: skip

    def table(self) -> str:
        lines = [f"{'width':>8} {'L0':>7} {'FVU':>8} {'dead':>7} {'dense':>7} {'CE spliced':>11} {'loss rec.':>10}"]
        for e in self.evals:
            lines.append(f"{e.width:>8,} {e.l0:>7.2f} {e.fvu:>8.4f} {e.dead_fraction:>7.1%} {e.dense_fraction:>7.1%} "
                         f"{e.ce_spliced:>11.4f} {e.loss_recovered:>10.1%}")  # fmt: skip
        e0 = self.evals[0]
        lines.append(f"(CE clean {e0.ce_clean:.4f}, zero-ablated {e0.ce_zero:.4f}; {e0.tokens:,} held-out positions, "
                     "all but BOS)")  # fmt: skip
        lines += [m.summary() for m in self.matches]
        return "\n".join(lines)


def analyse(model, saes: list, cfg: SAEEvalConfig = SAEEvalConfig(), *, threshold: float = SPLIT_THRESHOLD,
            contexts: Tensor | None = None, progress: bool = True) -> SweepResult:  # fmt: skip
    """Evaluate ``saes`` (one pass) and match consecutive widths (sorted by width)."""
    start = time.perf_counter()
    saes = sorted(saes, key=lambda s: s.cfg.width)
    evals = evaluate_many(model, saes, cfg, contexts=contexts, progress=progress)
    matches = [match_latents(a.W_dec, b.W_dec, threshold, ea.density > 0, eb.density > 0)
               for a, b, ea, eb in zip(saes, saes[1:], evals, evals[1:])]  # fmt: skip
    return SweepResult(evals, matches, seconds=time.perf_counter() - start)


def sweep_configs(widths: list[int] | tuple[int, ...], d_in: int, d_out: int, *, arch: str = "topk", k: int = 32,
                  transcoder: bool = False) -> list[SAEConfig]:  # fmt: skip
    """One config per width at the same ``k`` (matched L0), smallest first."""
    if arch not in SPARSE_BY_K:
        raise ConfigError(f"a width sweep matches L0 through k: use --arch {' or '.join(SPARSE_BY_K)}, not {arch}")
    if len(widths) < 2 or len(set(widths)) != len(widths):
        raise ConfigError(f"a sweep needs at least two different widths, got {','.join(map(str, widths)) or 'none'}")
    return [SAEConfig(arch=arch, d_in=d_in, width=w, k=k, transcoder=transcoder, d_out=d_out if transcoder else None)
            for w in sorted(widths)]  # fmt: skip


def check_sweep_dir(out: str | Path, labels: list[str], *, force: bool = False) -> Path:
    """Check the sweep folder before any work; a folder holding an earlier sweep with the same widths
    (even one killed before it finished) is ours to write again."""
    from mechscope.io import MARKER_FILE, check_output_dir, read_marker

    out = Path(out).expanduser()
    marker = read_marker(out) if out.is_dir() else None
    if marker is None or marker.get("kind") != KIND:
        return check_output_dir(out, KIND, force=force)
    planned = {MARKER_FILE, SWEEP_FILE, PNG_FILE, *labels, *(f"{lb}.checkpoint" for lb in labels)}
    others = sorted(p.name for p in out.iterdir() if p.name not in planned and not p.name.startswith("."))
    if others and not force:
        raise OutputPathError(f"{out} holds an earlier sweep with other files ({', '.join(others[:3])}"
                              f"{', …' if len(others) > 3 else ''}): choose a new folder, or pass --force to keep them")  # fmt: skip
    return check_output_dir(out, KIND, force=True)


def _write_marker(out: Path, names: list[str], fingerprint: str | None) -> None:
    from mechscope.io import MARKER_FILE, marker, sha256_file, write_json

    files = {}
    for name in names:
        p = out / name
        for f in sorted(p.rglob("*")) if p.is_dir() else [p] if p.is_file() else []:
            if f.is_file():
                rel = f.relative_to(out).as_posix()
                files[rel] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
    write_json(out / MARKER_FILE, marker(KIND, files, fingerprint=fingerprint))


def sweep(model, source, cfgs: list[SAEConfig], tc: SAETrainConfig = SAETrainConfig(),
          eval_cfg: SAEEvalConfig = SAEEvalConfig(), out: str | Path | None = None, *,
          threshold: float = SPLIT_THRESHOLD, png: bool = False, progress: bool = True, force: bool = False,
          fresh: bool = False) -> SweepResult:  # fmt: skip
    """Train ``cfgs`` on ``source`` in one pass (:func:`mechscope.sae.train.train_saes`), evaluate each on
    held-out text and match consecutive widths; with ``out``, save the SAEs, ``sweep.json`` (and
    ``sweep.png`` when ``png``)."""
    from mechscope.io import atomic_write, dumps
    from mechscope.sae.train import train_saes

    start = time.perf_counter()
    cfgs = sorted(cfgs, key=lambda c: c.width)
    labels = [c.label() for c in cfgs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"the sweep's SAEs need different widths, got {', '.join(labels)}")
    outs = None
    if out is not None:
        out = check_sweep_dir(out, labels, force=force)
        out.mkdir(parents=True, exist_ok=True)
        _write_marker(out, [], getattr(source, "fingerprint", None))
        outs = [out / lb for lb in labels]
    trained = train_saes(source, cfgs, tc, outs, progress=progress, fresh=fresh, force=force)
    res = analyse(model, [t.sae for t in trained], eval_cfg, threshold=threshold, progress=progress)
    res.train = [{"tokens": t.tokens, "seconds": round(t.seconds, 2), "final": t.history[-1] if t.history else None}
                 for t in trained]  # fmt: skip
    res.paths = [str(t.path) if t.path else None for t in trained]
    res.seconds = time.perf_counter() - start
    if out is not None:
        written = [*labels, SWEEP_FILE]
        if png:
            from mechscope.viz.sae_sweep import save_sweep_png

            save_sweep_png(res.to_dict(), out / PNG_FILE, title=model.name)
            written.append(PNG_FILE)
        atomic_write(out / SWEEP_FILE, dumps(res.to_dict()) + "\n")
        _write_marker(out, written, getattr(source, "fingerprint", None))
    return res
