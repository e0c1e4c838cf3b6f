"""The Neurons & features page: a Neuronpedia-style dashboard of one SAE latent or one MLP neuron.

- ``POST /api/features/scan`` → a job running :func:`mechscope.sae.features.features` (what ``mechscope sae
  features`` calls: one pass for every latent, cached on disk); its result is ``FeatureStats.to_dict()``.
- ``GET /api/features/{latent}?sae=DIR`` → ``FeatureStats.latent(latent, model, sae)`` from that cache
  (409 until the scan has run): density, histogram, top contexts, quantile bands, ± logits, similar latents.
- ``POST /api/neurons/scan`` → a job running :func:`mechscope.attribution.top_examples.top_examples` (what
  ``mechscope top-examples`` calls); ``GET /api/neurons/{unit}?hook=H`` → ``TopExamples.unit(model, unit)``.
- ``POST /api/activations`` → :mod:`mechscope.sae.feature_text`'s ``to_dict()``: the latent's or unit's
  activation at every token of a typed text.

SAE, store and corpus paths must lie inside the ``--runs`` folders. Scans hold the model lock for their
whole pass (a few seconds to a minute); the page polls the job and can cancel it (it stops at the next chunk).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from mechscope.web.routes import answer, workbench
from mechscope.web.security import check_web_prompt, resolve_under_roots

router = APIRouter(prefix="/api")
MAX_SCAN_TOKENS = 1 << 22
"""Most tokens one web scan may run through the model (the CLI has no such cap)."""


class Source(BaseModel):
    """Where the activations of a scan come from: a store, or corpus text run through the model."""

    model_config = ConfigDict(extra="forbid")
    tokens: int | None = Field(None, ge=2, le=MAX_SCAN_TOKENS)
    """Corpus tokens (default: the library's, 65536 for SAE features, 32768 for neurons)."""
    seq_len: int = Field(128, ge=2, le=4096)
    corpus: list[str] = Field(default_factory=lambda: ["builtin"], min_length=1, max_length=16)
    """``builtin`` and/or files or folders inside the ``--runs`` folders."""


class FeatureScan(Source):
    sae: str
    hook: str | None = None
    """The SAE's input hook, for layouts that do not record it (Gemma Scope)."""
    store: str | None = None
    """An activation store inside the ``--runs`` folders (instead of the corpus)."""


class NeuronScan(Source):
    hook: str
    k: int = Field(10, ge=1, le=64)


class ActivationsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    sae: str | None = None
    latent: int | None = None
    sae_hook: str | None = None
    hook: str | None = None
    unit: int | None = None


def corpus_config(src: Source, roots):
    from mechscope.data.corpus import BUILTIN, CorpusConfig

    sources = tuple(s if s == BUILTIN else str(resolve_under_roots(s, roots)) for s in src.corpus)
    return CorpusConfig(sources=sources, seq_len=src.seq_len)


def features_config(req: FeatureScan, roots):
    from mechscope.sae.feature_config import FeaturesConfig

    extra = {"tokens": req.tokens} if req.tokens is not None else {}
    return FeaturesConfig(corpus=corpus_config(req, roots), **extra)


def neurons_config(req: NeuronScan, roots):
    from mechscope.attribution.config import TopExamplesConfig

    extra = {"tokens": req.tokens} if req.tokens is not None else {}
    return TopExamplesConfig(corpus=corpus_config(req, roots), k=req.k, **extra)


def load_sae(path: str, model, roots, hook: str | None = None):
    """The SAE at ``path`` (inside the roots), checked against ``model``, on its device."""
    from mechscope.sae.artifact import load

    return load(resolve_under_roots(path, roots), model, hook=hook).to(model.device)


def _features_cache(model, sae, cfg, store) -> Path | None:
    """The cached pass of ``features(model, sae, cfg, store)`` if it exists (the library's own cache place)."""
    from mechscope.io import read_marker
    from mechscope.sae import features as F

    d = F.default_cache_dir(F.sae_digest(sae), F.cache_key(cfg, F.source_info(cfg, store)))
    return d if d.is_dir() and read_marker(d) is not None else None


def _not_scanned(what: str, route: str):
    return HTTPException(409, f"{what} has not been scanned yet with these settings: start the scan "
                              f"(POST {route}, the page's Scan button) and open it again when the job is done")  # fmt: skip


@router.post("/features/scan")
def features_scan(req: FeatureScan, request: Request) -> dict:
    """Start the one pass over every latent of the SAE (a job; instant when cached). Result: ``FeatureStats.to_dict()``."""
    from mechscope.sae.features import features

    wb = workbench(request)
    roots = wb.config.runs
    cfg = features_config(req, roots)
    sae_dir = resolve_under_roots(req.sae, roots)
    store = str(resolve_under_roots(req.store, roots)) if req.store else None
    with wb.using_model() as model:
        load_sae(str(sae_dir), model, roots, req.hook)  # a bad SAE fails now, not in the job

    def work(job) -> dict:
        job.progress(0, cfg.tokens, "waiting for the model")
        with wb.using_model() as model:
            sae = load_sae(str(sae_dir), model, roots, req.hook)
            stats = features(model, sae, None, cfg, store=store,
                             progress=lambda done, total: job.progress(done, total, "scanning"))  # fmt: skip
        from mechscope.io import finite_json

        return finite_json(stats.to_dict())

    return wb.jobs.submit("sae-features", work).to_dict()


@router.get("/features/{latent}")
def feature(latent: int, request: Request, sae: str, hook: str | None = None, store: str | None = None,
            tokens: int | None = None, seq_len: int = 128, corpus: str = "builtin", bands: int = 4,
            logits: int = 10, similar: int = 10):  # fmt: skip
    """One latent's dashboard (``mechscope sae features --json``) from the cached pass; 409 before the scan."""
    from mechscope.errors import ConfigError
    from mechscope.sae.feature_scan import open_store
    from mechscope.sae.feature_weights import check_latent
    from mechscope.sae.features import features

    wb = workbench(request)
    for name, v, hi in (("bands", bands, 16), ("logits", logits, wb.config.max_top_k), ("similar", similar, 100)):
        if not 1 <= v <= hi:
            raise ConfigError(f"{name} must be between 1 and {hi}, got {v}")
    req = FeatureScan(sae=sae, hook=hook, store=store, tokens=tokens, seq_len=seq_len, corpus=corpus.split(","))
    cfg = features_config(req, wb.config.runs)
    with wb.using_model() as model:
        s = load_sae(req.sae, model, wb.config.runs, hook)
        check_latent(latent, s.cfg.width)
        st = open_store(resolve_under_roots(store, wb.config.runs), model, s) if store else None
        if _features_cache(model, s, cfg, st) is None:
            raise _not_scanned(f"the SAE {sae!r:.80}", "/api/features/scan")
        stats = features(model, s, latent, cfg, store=st)
        out = stats.latent(latent, model, s, bands=bands, n_logits=logits, n_similar=similar)
    return answer(out)  # encoded after the lock is released


@router.post("/neurons/scan")
def neurons_scan(req: NeuronScan, request: Request) -> dict:
    """Start the top-examples pass over every unit of a hook (a job; instant when cached). Result:
    ``{"hook", "n_units", "tokens", "cached", "seconds"}``."""
    from mechscope.attribution.top_examples import top_examples, unit_count

    wb = workbench(request)
    cfg = neurons_config(req, wb.config.runs)
    with wb.using_model() as model:
        hook = model.spec(req.hook).name
        unit_count(model, hook)  # a pattern hook fails now

    def work(job) -> dict:
        job.progress(0, cfg.tokens, "waiting for the model")
        with wb.using_model() as model:
            res = top_examples(model, hook, None, cfg, progress=lambda done, total: job.progress(done, total, "scanning"))
        return {"hook": res.hook, "n_units": res.n_units, "tokens": res.meta["tokens"], "cached": res.cached,
                "seconds": round(res.seconds, 3)}  # fmt: skip

    return wb.jobs.submit("top-examples", work).to_dict()


@router.get("/neurons/{unit}")
def neuron(unit: int, request: Request, hook: str, tokens: int | None = None, seq_len: int = 128,
           corpus: str = "builtin", k: int = 10):  # fmt: skip
    """One unit's top and bottom contexts (``mechscope top-examples --json``) from the cache; 409 before the scan."""
    from mechscope.attribution.top_examples import default_cache_dir, top_examples, unit_count
    from mechscope.errors import OutOfRangeError
    from mechscope.io import read_marker

    wb = workbench(request)
    req = NeuronScan(hook=hook, tokens=tokens, seq_len=seq_len, corpus=corpus.split(","), k=k)
    cfg = neurons_config(req, wb.config.runs)
    with wb.using_model() as model:
        name = model.spec(hook).name
        n = unit_count(model, name)
        if not 0 <= unit < n:
            raise OutOfRangeError(f"unit {unit} out of range: {name} has {n} units (0..{n - 1})")
        d = default_cache_dir(model, name, cfg)
        if not (d.is_dir() and read_marker(d) is not None):
            raise _not_scanned(f"{name}", "/api/neurons/scan")
        res = top_examples(model, name, unit, cfg)
        out = res.unit(model, unit)
    return answer(out)  # encoded after the lock is released


@router.post("/activations")
def activations(req: ActivationsRequest, request: Request):
    """Per-token activations of a latent (``sae`` + ``latent``) or a unit (``hook`` + ``unit``) on ``text``."""
    from mechscope.errors import ConfigError
    from mechscope.sae.feature_text import latent_text_activations, unit_text_activations

    wb = workbench(request)
    check_web_prompt(req.text, wb.config.max_prompt_chars)
    latent_mode = req.sae is not None or req.latent is not None
    unit_mode = req.hook is not None or req.unit is not None
    if latent_mode == unit_mode or (latent_mode and (req.sae is None or req.latent is None)) or \
            (unit_mode and (req.hook is None or req.unit is None)):  # fmt: skip
        raise ConfigError("give either sae and latent (an SAE latent) or hook and unit (a neuron or dimension)")
    with wb.using_model() as model:
        if latent_mode:
            sae = load_sae(req.sae, model, wb.config.runs, req.sae_hook)
            res = latent_text_activations(model, sae, req.latent, req.text)
        else:
            res = unit_text_activations(model, req.hook, req.unit, req.text)
        out = res.to_dict()
    return answer(out)  # encoded after the lock is released
