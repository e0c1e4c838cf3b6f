"""The Grokking page: runs under the ``--runs`` roots, their analysis (``mechscope grok analyze``'s
:func:`~mechscope.labs.grokking.analyze.analyze`), the mechanism per checkpoint
(:func:`~mechscope.labs.grokking.checkpoint.checkpoint_view`) and new runs
(:func:`~mechscope.labs.grokking.train.train`, as ``mechscope grok train``) as background jobs.

Routes: ``GET /api/grok/runs``, ``POST /api/grok/analysis``, ``POST /api/grok/checkpoint``,
``POST /api/grok/train``. Run paths resolve inside the roots (403 otherwise). Nothing here needs the
loaded language model, so none of it takes the model lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mechscope.web.routes import workbench
from mechscope.web.security import resolve_under_roots

router = APIRouter(prefix="/api")

CACHE_SIZE = 256
"""Checkpoint views (and analyses) kept per server: they are small (p = 113: ~0.5 MB each)."""
MAX_DEPTH = 3
"""How deep under each root ``GET /api/grok/runs`` looks for runs."""


class _Cache:
    """A small thread-safe LRU kept on ``app.state`` (one per server)."""

    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key, make):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


def _cache(request: Request, name: str) -> _Cache:
    state = request.app.state
    with _LOCK:
        if not hasattr(state, name):
            setattr(state, name, _Cache(CACHE_SIZE))
        return getattr(state, name)


_LOCK = threading.Lock()


def _run_dir(request: Request, path: str) -> Path:
    return resolve_under_roots(path, workbench(request).config.runs)


def _run_entry(d: Path, root: Path) -> dict | None:
    from mechscope.labs.grokking import rundir

    try:
        marker = rundir.read_json(d / rundir.CONFIG_FILE)
    except Exception:  # noqa: BLE001 - not a readable run: skip it
        return None
    if not isinstance(marker, dict) or marker.get("format") != rundir.RUN_FORMAT:
        return None
    cfg = marker.get("config") or {}
    progress = {}
    if (d / rundir.PROGRESS_FILE).is_file():
        try:
            progress = rundir.read_json(d / rundir.PROGRESS_FILE)
        except Exception:  # noqa: BLE001
            progress = {}
    seeds = progress.get("seeds") or [cfg.get("seed", 0)]
    analysed = [s for s in seeds if (rundir.seed_dir(d, s) / rundir.ANALYSIS_FILE).is_file()]
    return {"path": str(d), "name": str(d.relative_to(root)) if d != root else d.name, "root": str(root),
            "recipe": cfg.get("recipe"), "p": (cfg.get("model") or {}).get("p"), "operation": cfg.get("operation"),
            "seeds": seeds, "step": progress.get("step"), "epochs": cfg.get("epochs"),
            "complete": progress.get("complete"), "analysed": analysed}  # fmt: skip


@router.get("/grok/runs")
def runs(request: Request) -> dict:
    """Every grokking run (a folder whose ``config.json`` is a run's) up to 3 levels under each root."""
    out = []
    for root in workbench(request).config.runs:
        stack = [(root, 0)]
        while stack:
            d, depth = stack.pop()
            entry = _run_entry(d, root)
            if entry is not None:
                out.append(entry)
                continue
            if depth < MAX_DEPTH:
                try:
                    subs = sorted((p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)
                except OSError:
                    continue
                stack += [(p, depth + 1) for p in subs if _inside_root(p, root)]
    return {"roots": [str(r) for r in workbench(request).config.runs], "runs": sorted(out, key=lambda r: r["path"])}


def _inside_root(p: Path, root: Path) -> bool:
    r = p.resolve()
    return r == root or root in r.parents  # a symlink out of the root is not followed


class AnalysisRequest(BaseModel):
    """The body of ``POST /api/grok/analysis`` (the arguments of ``mechscope grok analyze``)."""

    model_config = ConfigDict(extra="forbid")
    run: str
    seed: int | None = None
    recompute: bool = False


def _analysis_dict(analysis) -> dict:
    from mechscope.io import finite_json

    return finite_json(analysis.to_dict())


@router.post("/grok/analysis")
def analysis(req: AnalysisRequest, request: Request) -> dict:
    """``{"analysis": Analysis.to_dict()}`` when a current saved analysis exists, else ``{"job": ...}``:
    :func:`analyze` runs in the background (it reads every checkpoint) and the job's result is that JSON."""
    from mechscope.labs.grokking.analyze import analyze, load_analysis
    from mechscope.labs.grokking.rundir import Run

    run_dir = _run_dir(request, req.run)
    run = Run.open(run_dir, req.seed)  # one-line RunError (404) for a folder that is no run
    saved = None if req.recompute else load_analysis(run)
    if saved is not None:
        return {"analysis": _analysis_dict(saved), "job": None}

    def work(job) -> dict:
        job.progress(0, None, "analysing the checkpoints")
        return _analysis_dict(analyze(run_dir, seed=req.seed, progress=False, reuse=not req.recompute))

    return {"analysis": None, "job": workbench(request).jobs.submit("grok-analyze", work).to_dict()}


class CheckpointRequest(BaseModel):
    """The body of ``POST /api/grok/checkpoint``."""

    model_config = ConfigDict(extra="forbid")
    run: str
    epoch: int
    seed: int | None = None
    token: int | None = None


@router.post("/grok/checkpoint")
def checkpoint(req: CheckpointRequest, request: Request) -> dict:
    """``checkpoint_view(analysis, epoch, token).to_dict()`` of an analysed run (cached per run, seed,
    training step, epoch and token)."""
    from mechscope.errors import RunError
    from mechscope.io import finite_json
    from mechscope.labs.grokking.analyze import load_analysis
    from mechscope.labs.grokking.checkpoint import checkpoint_view
    from mechscope.labs.grokking.rundir import Run

    run_dir = _run_dir(request, req.run)
    run = Run.open(run_dir, req.seed)

    def load():
        saved = load_analysis(run)
        if saved is None:
            raise RunError(f"{req.run!r:.120} (seed {run.seed}) has no current analysis: analyse it first (open it on the page's "
                           f"Grokking tab, or `mechscope grok analyze {run_dir}`)")  # fmt: skip
        return saved

    key = (str(run_dir), run.seed, run.step)
    saved = _cache(request, "grok_analyses").get(key, load)
    return _cache(request, "grok_checkpoints").get(
        (*key, req.epoch, req.token), lambda: finite_json(checkpoint_view(saved, req.epoch, req.token).to_dict()))


class TrainRequest(BaseModel):
    """The body of ``POST /api/grok/train`` (the flags of ``mechscope grok train``)."""

    model_config = ConfigDict(extra="forbid")
    out: str
    recipe: Literal["small", "fast", "paper"] = "small"
    p: int | None = Field(None, ge=3, le=211)
    epochs: int | None = Field(None, ge=1, le=100_000)
    frac: float | None = Field(None, gt=0, lt=1)
    seed: int | None = Field(None, ge=0)
    operation: Literal["add", "subtract", "multiply"] | None = None


@router.post("/grok/train")
def train_run(req: TrainRequest, request: Request) -> dict:
    """Train a new run into ``out`` (inside a root) as a background job, or resume the run already there
    (then its saved config wins and the other fields are ignored). Progress: epochs done of the total;
    cancel stops at the next epoch (the last checkpoint stays resumable). The result is the
    ``TrainSummary.to_dict()`` (``mechscope grok train --json``)."""
    from dataclasses import replace

    from mechscope.io import finite_json
    from mechscope.labs.grokking import rundir
    from mechscope.labs.grokking.config import GrokConfig
    from mechscope.labs.grokking.train import train

    out = _run_dir(request, req.out)
    rundir.check_run_dir(out)  # a folder of someone's files is refused before the job starts
    resume = (out / rundir.CONFIG_FILE).is_file()
    cfg = None
    if not resume:
        over = {k: v for k, v in {"epochs": req.epochs, "frac_train": req.frac, "seed": req.seed,
                                  "operation": req.operation}.items() if v is not None}  # fmt: skip
        cfg = GrokConfig.from_recipe(req.recipe, **over)
        if req.p is not None:
            cfg = replace(cfg, model=replace(cfg.model, p=req.p))

    def work(job) -> dict:
        job.progress(0, cfg.epochs if cfg else None, "training")
        summary = train(cfg, out, progress=False, on_epoch=lambda step, total: job.progress(step, total, "training"))
        return finite_json(summary.to_dict())

    return workbench(request).jobs.submit("grok-train", work).to_dict()
