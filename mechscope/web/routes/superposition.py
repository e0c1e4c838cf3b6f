"""The Superposition page: toy models of superposition, near-orthogonal vectors and the AND-neuron fact
memory, through :mod:`mechscope.labs.superposition.report` (what ``mechscope toy … --json`` prints).

Routes: ``POST /api/superposition/toy`` and ``/orthogonal`` (background jobs: training takes seconds;
progress is not reported inside a run and cancel takes effect before it starts), ``POST
/api/superposition/memory`` (answered at once). The labs own their small models: nothing here takes the
language model's lock. The web's limits keep a request to seconds (the CLI has none).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mechscope.web.routes import workbench

router = APIRouter(prefix="/api")


class ToyRequest(BaseModel):
    """The body of ``POST /api/superposition/toy`` (the flags of ``mechscope toy superposition``)."""

    model_config = ConfigDict(extra="forbid")
    n: int = Field(5, ge=1, le=200)
    m: int = Field(2, ge=1, le=100)
    density: float = 0.05
    importance: float = 0.9
    instances: int = Field(4, ge=1, le=32)
    steps: int = Field(2000, ge=1, le=20_000)
    seed: int = Field(0, ge=0)


def toy_config(req: ToyRequest):
    from mechscope.labs.superposition.config import ToyConfig

    return ToyConfig(**req.model_dump())


@router.post("/superposition/toy")
def toy(req: ToyRequest, request: Request) -> dict:
    """A job whose result is ``toy_report(cfg).to_dict(weights=True)``."""
    from mechscope.io import finite_json
    from mechscope.labs.superposition.report import toy_report

    cfg = toy_config(req)  # a bad setting is a 422 now, not a failed job

    def work(job) -> dict:
        job.progress(0, cfg.steps, "training toy models")
        return finite_json(toy_report(cfg).to_dict(weights=True))

    return workbench(request).jobs.submit("toy", work).to_dict()


class OrthoRequest(BaseModel):
    """The body of ``POST /api/superposition/orthogonal`` (the flags of ``mechscope toy orthogonal``)."""

    model_config = ConfigDict(extra="forbid")
    n: int = Field(1000, ge=2, le=5000)
    dim: int = Field(50, ge=1, le=1000)
    loss: str = "both"
    steps: int = Field(40, ge=0, le=500)
    lr: float = 0.01
    seed: int = Field(0, ge=0)


def ortho_config(req: OrthoRequest):
    from mechscope.labs.superposition.config import OrthoConfig

    return OrthoConfig(**req.model_dump())


@router.post("/superposition/orthogonal")
def orthogonal(req: OrthoRequest, request: Request) -> dict:
    """A job whose result is ``orthogonal_report(cfg).to_dict(hist=True)``."""
    from mechscope.io import finite_json
    from mechscope.labs.superposition.report import orthogonal_report

    cfg = ortho_config(req)

    def work(job) -> dict:
        job.progress(0, None, "optimising vectors")
        return finite_json(orthogonal_report(cfg).to_dict(hist=True))

    return workbench(request).jobs.submit("orthogonal", work).to_dict()


class MemoryRequest(BaseModel):
    """The body of ``POST /api/superposition/memory``."""

    model_config = ConfigDict(extra="forbid")
    bias: float = -1.0


@router.post("/superposition/memory")
def memory(req: MemoryRequest) -> dict:
    """``memory_report(bias).to_dict(detail=True)``: the AND neuron with and without its bias."""
    from mechscope.io import finite_json
    from mechscope.labs.superposition.report import memory_report

    return finite_json(memory_report(req.bias).to_dict(detail=True))
