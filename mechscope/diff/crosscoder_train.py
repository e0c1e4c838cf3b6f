"""Crosscoder diffing end to end: paired activations → BatchTopK crosscoder → latents by relative norm →
the tuned-only latents' top contexts and logits.

Activations: both models' ``blocks.{l}.hook_resid_post`` at every real position but BOS of the same
token sequences (the diff's prompts, read from the diff's own forwards through its ``sink``, topped up
with corpus contexts until ``tokens`` rows: the built-in corpus by default, or ``--cc-corpus`` text). Training goes through the SAE trainer
(:func:`mechscope.sae.train.train_saes` with a :class:`~mechscope.sae.train.TensorSource` of the
concatenated pairs and the crosscoder's ``build`` hook): same optimiser recipe, input scaling, AuxK.

Which tuned-only latents are shown: the *live* ones (that fire at least once on the harvested
tokens; a dead latent's decoder split means nothing) with ``r > 0.9``, by total activation over the
tokens, largest first. Their logits are the difference lens (:mod:`mechscope.diff.lens`) of the
tuned decoder direction: ``W_U · (g ⊙ d_tuned)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechscope.diff.crosscoder import Crosscoder, CrosscoderConfig, classes
from mechscope.errors import ConfigError
from mechscope.sae.config import SAETrainConfig

CONTEXT_BEFORE = 10
"""Tokens shown before the active one in a top context."""


@dataclass
class PairActivations:
    """Paired activations of one layer with where each row came from."""

    layer: int
    base: list[Tensor] = field(default_factory=list)
    tuned: list[Tensor] = field(default_factory=list)
    seqs: list[list[int]] = field(default_factory=list)
    """Token ids of every sequence the rows come from."""
    where: list[Tensor] = field(default_factory=list)
    """``[rows, 2]`` (sequence index, position) per chunk."""
    limit: int | None = None

    @property
    def rows(self) -> int:
        return sum(x.shape[0] for x in self.base)

    def sink(self, a: Float[Tensor, "batch pos d_model"], t: Float[Tensor, "batch pos d_model"],
             ids: Int[Tensor, "batch pos"], keep: Tensor) -> None:  # fmt: skip
        """Take one batch's real non-BOS positions (the diff pass's ``sink``)."""
        if self.limit is not None and self.rows >= self.limit:
            return
        first = len(self.seqs)
        lengths = keep.sum(1) + 1  # right padding: real length = kept + BOS
        for row, n in zip(ids.tolist(), lengths.tolist()):
            self.seqs.append(row[:n])
        b, p = keep.nonzero(as_tuple=True)
        self.base.append(a[b, p].float().cpu())
        self.tuned.append(t[b, p].float().cpu())
        self.where.append(torch.stack([b.cpu() + first, p.cpu()], 1))

    def x(self) -> Float[Tensor, "rows two_d"]:
        x = torch.cat([torch.cat(self.base), torch.cat(self.tuned)], 1)
        return x[: self.limit] if self.limit is not None else x

    def locations(self) -> Int[Tensor, "rows 2"]:
        w = torch.cat(self.where)
        return w[: self.limit] if self.limit is not None else w


def top_up(acts: PairActivations, base, tuned, tokens: int, seq_len: int, batch_size: int = 16,
           progress: bool = True, sources: tuple[str, ...] = ("builtin",)) -> None:  # fmt: skip
    """Add corpus contexts (``sources``: the built-in corpus and/or text files, train split) through both
    models until ``acts`` holds ``tokens`` rows."""
    from mechscope.data.corpus import CorpusConfig, corpus_batches

    need = tokens - acts.rows
    if need <= 0:
        return
    name = f"blocks.{acts.layer}.hook_resid_post"
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=need, desc="mechscope: crosscoder activations", unit="tok", leave=False)
    got = 0
    for ctx in corpus_batches(base.tokenizer, CorpusConfig(sources=tuple(sources), seq_len=seq_len), "train", batch_size,
                              max_tokens=need + seq_len * batch_size, progress=False):  # fmt: skip
        with torch.no_grad():
            a = base.collect(ctx, name, prepend_bos=False)[name]
            t = tuned.collect(ctx, name, prepend_bos=False)[name]
        keep = torch.ones(ctx.shape, dtype=torch.bool)
        keep[:, 0] = False
        before = acts.rows
        acts.sink(a, t, ctx, keep)
        got += acts.rows - before
        if bar is not None:
            bar.update(acts.rows - before)
        if acts.rows >= tokens:
            break
    if bar is not None:
        bar.close()


def train_crosscoder(x: Float[Tensor, "rows two_d"], cfg: CrosscoderConfig, tc: SAETrainConfig = SAETrainConfig(),
                     info: dict | None = None, progress: bool = True) -> tuple[Crosscoder, dict]:  # fmt: skip
    """Train on concatenated pairs ``x`` (base then tuned); returns the crosscoder (raw activations) and
    the trainer's last metrics."""
    from mechscope.diff.crosscoder import build
    from mechscope.sae.train import TensorSource, train_saes

    if x.ndim != 2 or x.shape[1] != 2 * cfg.d_model:
        raise ConfigError(f"crosscoder input must be [rows, {2 * cfg.d_model}], got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ConfigError("the paired activations hold NaN or inf: a model is broken")
    if x.shape[0] < 2:
        raise ConfigError("too few activation rows to train a crosscoder: give more prompts or --tokens")
    if x.shape[0] < tc.batch_tokens:
        from dataclasses import replace

        tc = replace(tc, batch_tokens=int(x.shape[0]))
    info = dict(info or {})
    src = TensorSource(x, hook=info.get("hook", "pair"), fingerprint=info.get("pair_fingerprint"),
                       model_name=info.get("tuned"))  # fmt: skip
    res = train_saes(src, [cfg.sae_config()], tc, progress=progress, build=build)[0]
    cc = res.sae
    assert isinstance(cc, Crosscoder)
    cc.info.update(info)
    return cc, (res.history[-1] if res.history else {})


def encode_all(cc: Crosscoder, x: Float[Tensor, "rows two_d"], chunk: int = 4096) -> tuple[Tensor, Tensor, Tensor]:
    """Per latent: total activation and how often it fired; the FVU of both models together and each."""
    width = cc.cfg.width
    mass = torch.zeros(width, dtype=torch.float64)
    count = torch.zeros(width, dtype=torch.int64)
    sse = torch.zeros(2, dtype=torch.float64)
    mean = x.double().mean(0)
    var = torch.stack([((x[:, : cc.d_model].double() - mean[: cc.d_model]) ** 2).sum(),
                       ((x[:, cc.d_model:].double() - mean[cc.d_model:]) ** 2).sum()])  # fmt: skip
    with torch.no_grad():
        for part in x.split(chunk):
            f = cc.encode(part)
            mass += f.sum(0).double()
            count += (f > 0).sum(0)
            err = (cc.decode(f) - part).pow(2)
            sse += torch.stack([err[:, : cc.d_model].sum(), err[:, cc.d_model:].sum()]).double()
    fvu = torch.cat([sse.sum()[None] / var.sum().clamp_min(1e-30), sse / var.clamp_min(1e-30)]).float()
    return mass.float(), count, fvu


def top_contexts(cc: Crosscoder, x: Tensor, loc: Tensor, seqs: list[list[int]], model, latent: int, n: int = 5,
                 chunk: int = 4096) -> list[dict]:  # fmt: skip
    """The ``n`` rows where ``latent`` fires most: ``{"text", "token", "activation"}`` (text ends at the token)."""
    with torch.no_grad():
        vals = torch.cat([cc.encode(part)[:, latent] for part in x.split(chunk)])
    top_v, top_i = vals.topk(min(n, vals.shape[0]))
    out = []
    for v, i in zip(top_v.tolist(), top_i.tolist()):
        if v <= 0:
            break
        s, p = loc[i].tolist()
        ids = seqs[s][max(1, p - CONTEXT_BEFORE): p + 1]
        toks = model.to_str_tokens(ids)
        out.append({"text": "".join(toks), "token": toks[-1], "activation": float(v)})
    return out


def crosscoder_report(cc: Crosscoder, acts: PairActivations, tuned, *, rms: float, n_latents: int = 10,
                      n_contexts: int = 5, n_tokens: int = 10) -> dict:  # fmt: skip
    """The ``"crosscoder"`` object of ``mechscope diff --json`` (see docs/diffing.md)."""
    from mechscope.diff.lens import lens_logits, norm_gain, top_tokens

    x, loc = acts.x(), acts.locations()
    mass, count, fvu = encode_all(cc, x)
    rel = cc.rel_norm()
    live = count > 0
    masks = classes(rel)
    counts = {k: int((m & live).sum()) for k, m in masks.items()}
    counts["dead"] = int((~live).sum())
    order = torch.where(masks["tuned_only"] & live, mass, torch.full_like(mass, -1.0)).argsort(descending=True)
    chosen = [int(j) for j in order[: n_latents] if masks["tuned_only"][j] and live[j]]
    gain = norm_gain(tuned)
    rows = []
    if chosen:
        dirs = cc.decoders[chosen, 1].detach()
        logits = lens_logits(tuned, dirs, torch.full((len(chosen),), float(rms)), gain)
        for j, lat in enumerate(chosen):
            rows.append({"latent": lat, "rel_norm": float(rel[lat]), "frequency": float(count[lat]) / max(1, x.shape[0]),
                         "top_tokens": [t["token"] for t in top_tokens(tuned, logits[j], n_tokens)],
                         "contexts": top_contexts(cc, x, loc, acts.seqs, tuned, lat, n_contexts)})  # fmt: skip
    return {"width": cc.cfg.width, "k": cc.cfg.k, "layer": acts.layer, "tokens": int(x.shape[0]),
            "fvu": float(fvu[0]), "fvu_base": float(fvu[1]), "fvu_tuned": float(fvu[2]), "counts": counts,
            "rel_norms": [round(float(r), 4) for r in rel], "live": live.tolist(), "tuned_only": rows}  # fmt: skip
