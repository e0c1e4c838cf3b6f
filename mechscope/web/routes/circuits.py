"""The Circuits page: activation patching, causal tracing and direct logit attribution on the loaded model,
through the functions ``mechscope patch``, ``mechscope trace`` and ``mechscope dla`` call, plus one heatmap
cell rerun alone (:mod:`mechscope.attribution.cell`) for its top-10.

Routes: ``POST /api/circuits/patch`` and ``/trace`` (background jobs: a patching grid or a trace is many
forwards; the job holds the model lock while it runs and reports progress per batched forward; cancel
stops it at the next one), ``POST /api/circuits/dla``, ``/patch-cell``, ``/trace-cell`` (answered at
once) and ``GET /api/circuits/facts`` (the built-in fact set).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mechscope.web.routes import workbench
from mechscope.web.security import check_web_prompt

router = APIRouter(prefix="/api")

MAX_SAMPLES = 50
"""Most noise draws one trace request may ask for."""


def _check_prompts(wb, *prompts: str) -> None:
    for p in prompts:
        check_web_prompt(p, wb.config.max_prompt_chars)


def _check_top_k(wb, top_k: int) -> None:
    from mechscope.errors import ConfigError

    if top_k > wb.config.max_top_k:
        raise ConfigError(f"top_k {top_k} is above the workbench's limit of {wb.config.max_top_k}")


class PatchRequest(BaseModel):
    """The body of ``POST /api/circuits/patch`` (the flags of ``mechscope patch``)."""

    model_config = ConfigDict(extra="forbid")
    clean: str
    corrupt: str
    answer: str
    wrong: str | None = None
    what: list[Literal["resid", "attn", "mlp", "heads", "resid_pre", "attn_out", "mlp_out"]] = Field(
        default_factory=lambda: ["resid", "attn", "mlp"], min_length=1, max_length=4)
    align: Literal["left", "right"] | None = None


def run_patch(model, req: PatchRequest, on_progress=None) -> dict:
    """What the job returns: ``activation_patching(...).to_dict()`` (``mechscope patch --json``)."""
    from mechscope.attribution.patching import activation_patching
    from mechscope.io import finite_json

    res = activation_patching(model, req.clean, req.corrupt, req.answer, req.wrong, what=req.what, align=req.align,
                              on_progress=on_progress)  # fmt: skip
    return finite_json(res.to_dict())


@router.post("/circuits/patch")
def patch(req: PatchRequest, request: Request) -> dict:
    """Submit the patching grid as a job (poll ``GET /api/jobs/{id}``; its ``result`` is the JSON)."""
    wb = workbench(request)
    _check_prompts(wb, req.clean, req.corrupt)

    def work(job) -> dict:
        with wb.using_model() as model:
            return run_patch(model, req, lambda done, total: job.progress(done, total, "patched runs"))

    return wb.jobs.submit("patch", work).to_dict()


class TraceRequest(BaseModel):
    """The body of ``POST /api/circuits/trace`` (the flags of ``mechscope trace``)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str
    subject: str
    answer: str
    kinds: list[Literal["resid", "mlp", "attn"]] = Field(default_factory=lambda: ["resid", "mlp", "attn"],
                                                         min_length=1, max_length=3)  # fmt: skip
    samples: int = Field(10, ge=1, le=MAX_SAMPLES)
    window: int = Field(10, ge=1)
    noise: float = Field(3.0, ge=0, le=1e6)
    seed: int = Field(0, ge=0)


def trace_config(req) -> object:
    from mechscope.attribution.config import TraceConfig

    return TraceConfig(samples=req.samples, window=req.window, noise=req.noise, seed=req.seed)


def run_trace(model, req: TraceRequest, on_progress=None) -> dict:
    """What the job returns: ``causal_trace(...).to_dict()`` (``mechscope trace --json``)."""
    from mechscope.attribution.tracing import causal_trace
    from mechscope.io import finite_json

    res = causal_trace(model, req.prompt, req.subject, req.answer, trace_config(req), kinds=req.kinds,
                       on_progress=on_progress)  # fmt: skip
    return finite_json(res.to_dict())


@router.post("/circuits/trace")
def trace(req: TraceRequest, request: Request) -> dict:
    """Submit the causal trace as a job (poll ``GET /api/jobs/{id}``; its ``result`` is the JSON)."""
    wb = workbench(request)
    _check_prompts(wb, req.prompt)
    trace_config(req)  # a bad setting is a 422 now, not a failed job

    def work(job) -> dict:
        with wb.using_model() as model:
            return run_trace(model, req, lambda done, total: job.progress(done, total, "noised runs"))

    return wb.jobs.submit("trace", work).to_dict()


class DLARequest(BaseModel):
    """The body of ``POST /api/circuits/dla`` (the flags of ``mechscope dla``)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str
    answer: str
    wrong: str | None = None
    position: int = -1
    top_k: int = Field(10, ge=1)


@router.post("/circuits/dla")
def dla(req: DLARequest, request: Request) -> dict:
    """``direct_logit_attribution(...).to_dict(top_k)`` (``mechscope dla --json``)."""
    from mechscope.attribution.dla import direct_logit_attribution
    from mechscope.io import finite_json

    wb = workbench(request)
    _check_prompts(wb, req.prompt)
    _check_top_k(wb, req.top_k)
    with wb.using_model() as model:
        res = direct_logit_attribution(model, req.prompt, req.answer, req.wrong, req.position)
        return finite_json(res.to_dict(req.top_k))


class PatchCellRequest(PatchRequest):
    """``POST /api/circuits/patch-cell``: the patch request plus the cell (``kind``, ``layer``, ``index``:
    the clean position, or the head for ``heads``)."""

    kind: Literal["resid_pre", "attn_out", "mlp_out", "heads"]
    layer: int
    index: int
    top_k: int = Field(10, ge=1)


@router.post("/circuits/patch-cell")
def patch_cell(req: PatchCellRequest, request: Request) -> dict:
    """``attribution.cell.patch_cell(...).to_dict()``: top-k next tokens under that one patch."""
    from mechscope.attribution.cell import patch_cell as run_cell
    from mechscope.io import finite_json

    wb = workbench(request)
    _check_prompts(wb, req.clean, req.corrupt)
    _check_top_k(wb, req.top_k)
    with wb.using_model() as model:
        res = run_cell(model, req.clean, req.corrupt, req.answer, req.wrong, kind=req.kind, layer=req.layer,
                       index=req.index, align=req.align, top_k=req.top_k)  # fmt: skip
        return finite_json(res.to_dict())


class TraceCellRequest(TraceRequest):
    """``POST /api/circuits/trace-cell``: the trace request plus the cell (``kind``, ``layer``, ``position``)."""

    kind: Literal["resid", "mlp", "attn"]
    layer: int
    position: int
    top_k: int = Field(10, ge=1)


@router.post("/circuits/trace-cell")
def trace_cell(req: TraceCellRequest, request: Request) -> dict:
    """``attribution.cell.trace_cell(...).to_dict()``: top-k under that one restored state."""
    from mechscope.attribution.cell import trace_cell as run_cell
    from mechscope.io import finite_json

    wb = workbench(request)
    _check_prompts(wb, req.prompt)
    _check_top_k(wb, req.top_k)
    with wb.using_model() as model:
        res = run_cell(model, req.prompt, req.subject, req.answer, trace_config(req), kind=req.kind, layer=req.layer,
                       position=req.position, top_k=req.top_k)  # fmt: skip
        return finite_json(res.to_dict())


@router.get("/circuits/facts")
def facts() -> dict:
    """The built-in fact set of ``mechscope trace --facts`` (subject, prompt, answer)."""
    from mechscope.attribution.facts import FACTS

    return {"facts": [f._asdict() for f in FACTS]}
