"""The Steering page: SAE latent steering with a dose slider, and steering vectors with a coefficient sweep.

- ``POST /api/steer`` → :func:`mechscope.steer.feature.steer_latent` ``.to_dict()`` (``mechscope steer --json``
  without the CLI's ``sae_dir``/``interventions``/``files`` fields); the page sends the unsteered dose 0
  and the slider's dose and shows the two side by side.
- ``GET /api/vector/builtin`` → the built-in prompt sets (``{"sets": {"doubt": {"pos": [...], "neg": [...]}}}``).
- ``POST /api/vector/make`` → :func:`mechscope.steer.vector.make_vector` ``.to_dict()`` plus ``id`` (the vector
  is kept in memory for ``apply``; with ``save`` it is also written inside the ``--runs`` folders).
- ``POST /api/vector/apply`` → :func:`mechscope.steer.apply.apply_vector` ``.to_dict()`` (``mechscope vector
  apply --json`` without ``vector_dir``/``files``), for a vector ``id`` or a saved vector folder.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mechscope.web.routes import answer, workbench
from mechscope.web.routes.features import load_sae
from mechscope.web.security import check_web_prompt, resolve_under_roots

router = APIRouter(prefix="/api")
KEEP_VECTORS = 16
"""Vectors made in this server and kept in memory for ``apply`` (older ones are forgotten)."""
MAX_PROMPTS = 512
"""Most prompts per side of a vector made through the workbench."""


class SteerRequest(BaseModel):
    """The body of ``POST /api/steer`` (the flags of ``mechscope steer``)."""

    model_config = ConfigDict(extra="forbid")
    sae: str
    latent: int
    prompt: str
    values: list[float] = Field(min_length=1, max_length=64)
    mode: Literal["add", "clamp"] = "add"
    generate: int = Field(20, ge=0)
    top_k: int = Field(10, ge=1)
    include_bos: bool = False
    hook: str | None = None
    """The SAE's hook, for layouts that do not record it (Gemma Scope)."""


class MakeRequest(BaseModel):
    """The body of ``POST /api/vector/make`` (the flags of ``mechscope vector make``)."""

    model_config = ConfigDict(extra="forbid")
    hook: str
    builtin: str | None = None
    pos: list[str] | None = Field(None, max_length=MAX_PROMPTS)
    neg: list[str] | None = Field(None, max_length=MAX_PROMPTS)
    method: Literal["mean", "pca"] = "mean"
    position: Literal["mean", "last", "all"] = "mean"
    save: str | None = None
    """A folder inside the ``--runs`` folders to write the vector to (optional)."""
    force: bool = False


class ApplyRequest(BaseModel):
    """The body of ``POST /api/vector/apply`` (the flags of ``mechscope vector apply``)."""

    model_config = ConfigDict(extra="forbid")
    vector: str
    """An ``id`` from ``/api/vector/make``, or a saved vector folder inside the ``--runs`` folders."""
    prompt: str
    coefs: list[float] = Field(min_length=1, max_length=64)
    targets: list[str] = Field(default_factory=list, max_length=32)
    generate: int = Field(0, ge=0)
    top_k: int = Field(10, ge=1)
    include_bos: bool = False


class VectorShelf:
    """Vectors made by this server, by id (kept on the app's state next to the Workbench)."""

    def __init__(self):
        self._items: OrderedDict[str, object] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def put(self, vec) -> str:
        with self._lock:
            key = f"v{next(self._ids)}"
            self._items[key] = vec
            while len(self._items) > KEEP_VECTORS:
                self._items.popitem(last=False)
            return key

    def get(self, key: str):
        with self._lock:
            return self._items.get(key)


def shelf(request: Request) -> VectorShelf:
    state = request.app.state
    with _SHELF_LOCK:
        if not hasattr(state, "steering_vectors"):
            state.steering_vectors = VectorShelf()
        return state.steering_vectors


_SHELF_LOCK = threading.Lock()


def check_limits(wb, top_k: int, generate: int) -> None:
    from mechscope.errors import ConfigError

    if top_k > wb.config.max_top_k:
        raise ConfigError(f"top_k {top_k} is above the workbench's limit of {wb.config.max_top_k}")
    if generate > wb.config.max_generate:
        raise ConfigError(f"generate {generate} is above the workbench's limit of {wb.config.max_generate} tokens")


@router.post("/steer")
def steer(req: SteerRequest, request: Request):
    """``{sae, latent, prompt, values, mode, generate, top_k, include_bos}`` → ``SteerResult.to_dict()``."""
    from mechscope.steer.feature import steer_latent

    wb = workbench(request)
    check_web_prompt(req.prompt, wb.config.max_prompt_chars)
    check_limits(wb, req.top_k, req.generate)
    with wb.using_model() as model:
        sae = load_sae(req.sae, model, wb.config.runs, req.hook)
        res = steer_latent(model, sae, req.latent, req.prompt, req.values, req.mode, generate=req.generate,
                           top_k=req.top_k, include_bos=req.include_bos)  # fmt: skip
        out = res.to_dict()
    return answer(out)  # encoded after the lock is released


@router.get("/vector/builtin")
def builtin_sets() -> dict:
    """The built-in contrastive prompt sets, to show and edit on the page."""
    from mechscope.steer.builtin import NAMES, builtin_set

    return {"sets": {name: dict(zip(("pos", "neg"), builtin_set(name))) for name in NAMES}}


@router.post("/vector/make")
def make(req: MakeRequest, request: Request):
    """``{hook, builtin | pos + neg, method, position, save?}`` → ``SteeringVector.to_dict()`` + ``id`` (+ ``out``)."""
    from mechscope.errors import ConfigError
    from mechscope.io import check_output_dir
    from mechscope.steer.vector import KIND, make_vector

    wb = workbench(request)
    if req.builtin is not None:
        if req.pos is not None or req.neg is not None:
            raise ConfigError("give builtin or pos and neg, not both: a built-in set brings its own prompts")
        from mechscope.steer.builtin import builtin_set

        pos, neg = builtin_set(req.builtin)
        source = f"builtin:{req.builtin}"
    else:
        if not req.pos or not req.neg:
            raise ConfigError("give pos and neg prompt lists (one prompt each at least), or a builtin set such as doubt")
        pos, neg = req.pos, req.neg
        source = "workbench"
    for p in (*pos, *neg):
        check_web_prompt(p, wb.config.max_prompt_chars)
    out = check_output_dir(resolve_under_roots(req.save, wb.config.runs), KIND, force=req.force) if req.save else None
    with wb.using_model() as model:
        vec = make_vector(model, pos, neg, req.hook, method=req.method, position=req.position)
    vec.meta["source"] = source
    data = {**vec.to_dict(), "id": shelf(request).put(vec)}
    if out is not None:
        data["out"] = str(vec.save(out, force=req.force))
    return answer(data)


@router.post("/vector/apply")
def apply(req: ApplyRequest, request: Request):
    """``{vector: id | folder, prompt, coefs, targets, generate, top_k}`` → ``VectorResult.to_dict()``."""
    from mechscope.steer.apply import apply_vector
    from mechscope.steer.vector import load_vector

    wb = workbench(request)
    check_web_prompt(req.prompt, wb.config.max_prompt_chars)
    check_limits(wb, req.top_k, req.generate)
    vec = shelf(request).get(req.vector)
    with wb.using_model() as model:
        if vec is None:
            vec = load_vector(resolve_under_roots(req.vector, wb.config.runs), model)
        res = apply_vector(model, vec, req.prompt, req.coefs, generate=req.generate, targets=req.targets,
                           top_k=req.top_k, include_bos=req.include_bos)  # fmt: skip
        out = res.to_dict()
    return answer(out)  # encoded after the lock is released
