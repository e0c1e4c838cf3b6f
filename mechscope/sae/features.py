"""SAE feature dashboards: what one latent responds to and what it writes, Neuronpedia-style.

    >>> from mechscope.sae import features                                          # doctest: +SKIP
    >>> stats = features.features(model, sae, store="runs/acts-l6")                 # one pass, all latents
    >>> stats.latent(7, model, sae)["top_logits"][:3]                               # then any latent is instant

One streamed pass over the activations (an :class:`~mechscope.sae.store.ActivationStore` holding the
SAE's input hook, or the corpus run through the model) computes, for *every* latent at once
(:mod:`mechscope.sae.feature_stats`): activation density, a histogram of log10 activations, the top
activating contexts with per-token activations, and a uniform sample of firing contexts that the
dashboard sorts into activation quantile bands. BOS positions are always left out. The result is an
artifact (kind :data:`KIND`) cached under ``$MECHSCOPE_HOME/sae_features/<SAE digest>/<source key>``,
keyed by the SAE's weights and hooks, the store's contents (or the corpus settings) and the settings of
the pass. Logits and nearest latents come from the weights on demand (:mod:`mechscope.sae.feature_weights`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor

from mechscope.errors import ArtifactError, ConfigError
from mechscope.sae.feature_config import VERSION, FeaturesConfig
from mechscope.sae.feature_weights import check_latent, logit_lists, similar_list

KIND = "sae-features"
POSITIONS = "all but BOS"
__all__ = ["KIND", "FeatureStats", "FeaturesConfig", "features", "load", "save", "sae_digest"]


def sae_digest(sae) -> str:
    """16 hex digits of SHA-256 over the SAE's weights, architecture and hooks."""
    from mechscope.io import tensor_digest
    from mechscope.sae.artifact import weights

    blob = json.dumps({"weights": tensor_digest(weights(sae)), "sae": sae.cfg.to_dict(), "hook": sae.hook,
                       "target": sae.target}, sort_keys=True)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def source_info(cfg: FeaturesConfig, store=None) -> dict:
    """Where the activations come from (recorded in the artifact; its hash is part of the cache key)."""
    if store is None:
        return {"kind": "corpus", "corpus": cfg.corpus.to_dict(), "split": cfg.split, "tokens": cfg.tokens}
    files = {n: r.get("sha256") for n, r in sorted(store.marker["files"].items())}
    return {"kind": "store", "path": str(store.path), "fingerprint": store.fingerprint,
            "content": hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]}  # fmt: skip


def cache_key(cfg: FeaturesConfig, source: dict) -> str:
    src = {k: v for k, v in source.items() if k != "path"}  # a moved store keeps its cache
    blob = json.dumps({"source": src, "settings": cfg.pass_settings(source["kind"] == "store"), "v": VERSION},
                      sort_keys=True)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_cache_dir(digest: str, key: str) -> Path:
    from mechscope.model.convert import home

    return home() / "sae_features" / digest / key


@dataclass
class FeatureStats:
    """Statistics of every latent of one SAE over one source (see the module docstring)."""

    tables: dict[str, Tensor]
    """``hist`` [d_sae, bins], ``sum`` [d_sae], ``top.*`` / ``sample.*``: ``score``, ``context`` (stream id),
    ``row`` (into ``tokens``), ``position`` (index into the stored positions), ``acts`` [n, d_sae, pos]."""
    tokens: Int[Tensor, "context seq"]
    """Token ids of every context some table refers to (BOS first)."""
    meta: dict
    seconds: float = 0.0
    cached: bool = False

    @property
    def width(self) -> int:
        return int(self.meta["width"])

    @property
    def fires(self) -> Int[Tensor, " d_sae"]:
        """Tokens where each latent is positive."""
        return self.tables["hist"].sum(1)

    @property
    def density(self) -> Tensor:
        """Fraction of scanned tokens (BOS excluded) where each latent is positive."""
        return self.fires.double() / max(1, self.meta["tokens"])

    def _example(self, model, side: str, j: int, n: int) -> dict:
        t = self.tables
        first = self.meta["first_position"]
        ids = self.tokens[int(t[f"{side}.row"][j, n]), first:].tolist()
        acts = t[f"{side}.acts"][j, n]
        return {"context": int(t[f"{side}.context"][j, n]), "position": int(t[f"{side}.position"][j, n]),
                "max": float(acts.max()), "tokens": model.to_str_tokens(ids),
                "acts": [round(float(v), 5) for v in acts]}  # fmt: skip

    def latent(self, latent: int, model, sae=None, *, bands: int = 4, n_logits: int = 10, n_similar: int = 10) -> dict:
        """One latent's dashboard as a JSON-ready dict (the ``--json`` schema in docs/sae-features.md).

        With ``sae`` (the same SAE), its top/bottom logits and nearest latents are added.
        """
        check_latent(latent, self.width)
        if bands < 1:
            raise ConfigError(f"bands must be a positive integer, got {bands}")
        t, n = self.tables, latent
        fires = int(t["hist"][n].sum())
        top = [self._example(model, "top", j, n) for j in range(t["top.score"].shape[0]) if t["top.score"][j, n] > 0]
        valid = [j for j in range(t["sample.score"].shape[0]) if t["sample.score"][j, n] > float("-inf")]
        sampled = sorted((self._example(model, "sample", j, n) for j in valid), key=lambda e: -e["max"])
        groups = [g.tolist() for g in torch.arange(len(sampled)).tensor_split(bands)] if sampled else []
        quantiles = [{"band": b, "fraction": [b / bands, (b + 1) / bands],
                      "range": [sampled[g[-1]]["max"], sampled[g[0]]["max"]],
                      "examples": [sampled[i] for i in g]} for b, g in enumerate(groups) if g]  # fmt: skip
        edges = torch.linspace(self.meta["hist_min"], self.meta["hist_max"], self.meta["hist_bins"] + 1)
        out = {"latent": n, "width": self.width, "hook": self.meta["hook"], "target": self.meta["target"],
               "model": self.meta["model"], "positions": POSITIONS, "tokens_scanned": self.meta["tokens"],
               "contexts_scanned": self.meta["contexts"], "source": self.meta["source"],
               "density": fires / max(1, self.meta["tokens"]), "fires": fires,
               "mean_activation": float(t["sum"][n]) / fires if fires else 0.0,
               "max_activation": max(0.0, float(t["top.score"][0, n])),
               "histogram": {"log10_edges": [round(float(e), 6) for e in edges], "counts": t["hist"][n].tolist()},
               "top_examples": top, "quantiles": quantiles, "samples": len(sampled)}  # fmt: skip
        if sae is not None:
            out.update(logit_lists(model, sae, n, n_logits))
            out["similar"] = similar_list(sae, n, n_similar)
        return {**out, "cached": self.cached, "seconds": round(self.seconds, 3)}

    def to_dict(self) -> dict:
        """A summary over all latents: dead count and density quantiles."""
        d = self.density
        q = torch.quantile(d.float(), torch.tensor([0.1, 0.5, 0.9])).tolist() if d.numel() else [0.0] * 3
        return {**{k: self.meta[k] for k in ("width", "hook", "target", "model", "tokens", "contexts", "source")},
                "dead": int((self.fires == 0).sum()), "density_q10_q50_q90": q, "positions": POSITIONS,
                "cached": self.cached, "seconds": round(self.seconds, 3)}  # fmt: skip


def save(stats: FeatureStats, directory: Path, fingerprint: str | None) -> Path:
    from mechscope.io import write_artifact

    return write_artifact(directory, {**stats.tables, "tokens": stats.tokens}, stats.meta, kind=KIND,
                          fingerprint=fingerprint, version=VERSION)  # fmt: skip


def load(directory: Path, fingerprint: str | None) -> FeatureStats:
    from mechscope.io import read_artifact

    fix = "delete the folder (or pass --rescan) to compute it again"
    tensors, meta = read_artifact(directory, KIND, fingerprint, fix=fix)
    if "tokens" not in tensors or "hist" not in tensors or "width" not in meta:
        raise ArtifactError(f"the {KIND} at {directory} lacks its tables: {fix}")
    tokens = tensors.pop("tokens")
    return FeatureStats(tensors, tokens, meta, cached=True)


def features(model, sae, latent: int | None = None, config: FeaturesConfig | None = None, *, store=None,
             cache_dir: str | Path | None = None, cache: bool = True, rescan: bool = False,
             progress: bool | Callable[[int, int], None] = False) -> FeatureStats:  # fmt: skip
    """Statistics of every latent of ``sae`` (computed once per SAE and source, then read from the cache).

    ``store``: an :class:`~mechscope.sae.store.ActivationStore` or its path, holding the SAE's input hook
    and made with ``model``; without one, ``config.tokens`` tokens of ``config.corpus`` are run through the
    model. ``latent`` is only checked here, so a bad one fails before the pass; read it with
    :meth:`FeatureStats.latent`. ``progress``: True for a bar, or ``progress(done_tokens, total_tokens)``.
    """
    from mechscope.io import read_marker
    from mechscope.sae.artifact import check_for_model
    from mechscope.sae.feature_scan import open_store, scan

    cfg = config or FeaturesConfig()
    check_for_model(sae, model)
    if latent is not None:
        check_latent(latent, sae.cfg.width)
    if store is not None:
        store = open_store(store, model, sae)
    digest = sae_digest(sae)
    source = source_info(cfg, store)
    key = cache_key(cfg, source)
    directory = Path(cache_dir).expanduser() if cache_dir else default_cache_dir(digest, key)
    if cache and not rescan and directory.is_dir() and read_marker(directory) is not None:
        t0 = time.perf_counter()
        stats = load(directory, model.fingerprint)
        if stats.meta.get("sae_digest") == digest and stats.meta.get("key") == key:
            stats.seconds = time.perf_counter() - t0
            return stats
    stats = scan(model, sae, cfg, store, progress=progress)
    stats.meta.update({"sae_digest": digest, "key": key, "source": source})
    if cache:
        save(stats, directory, model.fingerprint)
    return stats
