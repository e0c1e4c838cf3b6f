"""``POST /api/run``: the Intervene page. Calls :func:`mechscope.model.prompt_run.run_prompt` (what
``mechscope run`` calls) twice, without and with the interventions, and answers both ``to_dict()``s:
``{"before": ..., "after": ...}``. Interventions are the JSON of docs/interventions.md; a tensor file
they reference must lie inside the ``--runs`` folders."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mechscope.web.routes import answer, workbench
from mechscope.web.security import check_tensor_files, check_web_prompt, parse_interventions

router = APIRouter(prefix="/api")


class RunRequest(BaseModel):
    """The body of ``POST /api/run`` (the flags of ``mechscope run``)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str
    interventions: list[Any] | dict[str, Any] = Field(default_factory=list)
    top_k: int = Field(10, ge=1)
    generate: int = Field(0, ge=0)
    position: int = -1
    hooks: list[str] = Field(default_factory=list, max_length=32)


@router.post("/run")
def run(req: RunRequest, request: Request):
    """``{prompt, interventions, top_k, generate, position, hooks}`` → ``{"before": run, "after": run}``."""
    from mechscope.errors import ConfigError
    from mechscope.model.prompt_run import run_prompt

    wb = workbench(request)
    check_web_prompt(req.prompt, wb.config.max_prompt_chars)
    if req.top_k > wb.config.max_top_k:
        raise ConfigError(f"top_k {req.top_k} is above the workbench's limit of {wb.config.max_top_k}")
    if req.generate > wb.config.max_generate:
        raise ConfigError(f"generate {req.generate} is above the workbench's limit of {wb.config.max_generate} tokens")
    edits = parse_interventions(req.interventions)
    edits = check_tensor_files(edits, wb.config.runs)
    kw = dict(hooks=req.hooks, position=req.position, generate=req.generate, top_k=req.top_k)
    with wb.using_model() as model:
        before = run_prompt(model, req.prompt, **kw)
        after = run_prompt(model, req.prompt, interventions=edits, **kw)
    return answer({"before": before.to_dict(), "after": after.to_dict()})
