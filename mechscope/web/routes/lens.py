"""``POST /api/lens``: the Lens page. Calls :func:`mechscope.lens.logit_lens` exactly as ``mechscope lens``
does and answers its ``to_dict()``, plus ``view`` (what the page draws for the selected position: each
row's raw residual vector there)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mechscope.web.routes import answer, workbench
from mechscope.web.security import check_web_prompt

router = APIRouter(prefix="/api")


class LensRequest(BaseModel):
    """The body of ``POST /api/lens`` (the flags of ``mechscope lens read``)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str
    lens: Literal["logit", "tuned"] = "logit"
    sublayers: bool = False
    top_k: int = Field(10, ge=1)
    position: int = -1
    targets: list[str] | None = Field(None, max_length=16)


def lens_answer(model, req: LensRequest, tuned=None) -> dict:
    """The route's JSON: ``logit_lens(...).to_dict()`` plus ``view`` for ``req.position``."""
    from mechscope.lens.logit import logit_lens

    res = logit_lens(model, req.prompt, top_k=req.top_k, sublayers=req.sublayers, targets=req.targets, lens=tuned)
    pos = res.position(req.position)
    resid = res.resid[:, pos].float()
    view = {"position": pos, "resid": resid.tolist(), "resid_rms": resid.pow(2).mean(-1).sqrt().tolist()}
    return {**res.to_dict(), "view": view}


@router.post("/lens")
def lens(req: LensRequest, request: Request):
    """``{prompt, lens: logit|tuned, sublayers, top_k, position, targets}`` → ``LensResult.to_dict()`` + ``view``."""
    from mechscope.errors import ConfigError

    wb = workbench(request)
    check_web_prompt(req.prompt, wb.config.max_prompt_chars)
    if req.top_k > wb.config.max_top_k:
        raise ConfigError(f"top_k {req.top_k} is above the workbench's limit of {wb.config.max_top_k}")
    with wb.using_model() as model:
        tuned = wb.tuned_lens(model) if req.lens == "tuned" else None
        out = lens_answer(model, req, tuned)
    return answer(out)  # encoded after the lock is released
