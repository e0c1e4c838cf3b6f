"""The Diffing page: the loaded model (the base) against a fine-tune of it, as ``mechscope diff BASE TUNED``.

``POST /api/diff`` starts a job that runs :func:`mechscope.diff.report.diff_models` (or, with
``"crosscoder": true``, :func:`mechscope.diff.crosscoder_run.diff_with_crosscoder`) and whose result is
``DiffResult.to_dict()``: norms by layer × position, promoted tokens, the steering sweep (and the
crosscoder's object). The tuned model is a folder inside the ``--runs`` folders; it is loaded once and
kept (one extra model at most: asking for another folder drops the first before loading).
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mechscope.web.routes import workbench
from mechscope.web.security import check_web_prompt, resolve_under_roots

router = APIRouter(prefix="/api")


class DiffRequest(BaseModel):
    """The body of ``POST /api/diff`` (the flags of ``mechscope diff``)."""

    model_config = ConfigDict(extra="forbid")
    tuned: str
    """The fine-tuned model's folder, inside the ``--runs`` folders."""
    prompts: list[str] | None = Field(None, min_length=1, max_length=1000)
    builtin_prompts: bool = False
    n_prompts: int = Field(100, ge=1, le=1000)
    seq_len: int = Field(64, ge=2, le=1024)
    layers: list[int] | None = Field(None, min_length=1, max_length=256)
    components: list[str] = Field(default_factory=lambda: ["resid_post"], max_length=3)
    batch_size: int = Field(16, ge=1, le=256)
    targets: list[str] = Field(default_factory=list, max_length=32)
    steer_layer: int | None = None
    steer_prompt: str | None = None
    coefs: list[float] = Field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0], min_length=1, max_length=64)
    generate: int = Field(0, ge=0)
    crosscoder: bool = False
    width: int = Field(2048, ge=1, le=65536)
    k: int = Field(32, ge=1)
    tokens: int = Field(20_000, ge=1, le=1 << 21)
    cc_layer: int | None = None
    steps_tokens: int | None = Field(None, ge=1, le=1 << 24)


class SecondModel:
    """The one extra model the workbench keeps (the tuned side of a diff), by resolved folder."""

    def __init__(self):
        self.path: Path | None = None
        self.model = None

    def get(self, path: Path, device: str):
        """The model at ``path`` (loaded once; a different folder replaces the kept one). Call it with
        the workbench's model lock held."""
        import mechscope

        if self.path != path:
            self.path, self.model = None, None
            gc.collect()  # the old weights go before the new ones load: one extra model at most
            self.model = mechscope.load(str(path), device=device)
            self.path = path
        return self.model


_LOCK = threading.Lock()


def second_model(request: Request) -> SecondModel:
    state = request.app.state
    with _LOCK:
        if not hasattr(state, "second_model"):
            state.second_model = SecondModel()
        return state.second_model


@router.post("/diff")
def diff(req: DiffRequest, request: Request) -> dict:
    """Start the diff (a job). Its result is ``DiffResult.to_dict()`` (``mechscope diff --json``)."""
    from mechscope.diff.activations import DiffConfig
    from mechscope.diff.steer import DEFAULT_PROMPT, check_coefs
    from mechscope.errors import ConfigError

    wb = workbench(request)
    if (req.prompts is None) == (not req.builtin_prompts):
        raise ConfigError("give prompts (a list of strings) or builtin_prompts: true, not both")
    for p in req.prompts or []:
        check_web_prompt(p, wb.config.max_prompt_chars)
    steer_prompt = check_web_prompt(req.steer_prompt, wb.config.max_prompt_chars) if req.steer_prompt else DEFAULT_PROMPT
    if req.generate > wb.config.max_generate:
        raise ConfigError(f"generate {req.generate} is above the workbench's limit of {wb.config.max_generate} tokens")
    if req.crosscoder and req.k > req.width:
        raise ConfigError(f"k ({req.k}) cannot exceed width ({req.width})")
    cfg = DiffConfig(layers=tuple(req.layers) if req.layers else None, components=tuple(req.components),
                     seq_len=req.seq_len, batch_size=req.batch_size)  # fmt: skip
    coefs = check_coefs(req.coefs)
    folder = resolve_under_roots(req.tuned, wb.config.runs)
    if not folder.is_dir():
        raise ConfigError(f"{req.tuned!r:.120} is not a model folder inside the workbench's --runs folders")
    keeper = second_model(request)
    phases = ["load", "diff"] if not req.crosscoder else ["load", "find-layer", "diff", "top-up", "train", "report"]

    def work(job) -> dict:
        from mechscope.diff.pair import builtin_prompts, check_pair, tokenize_prompts
        from mechscope.io import finite_json

        def phase(name: str) -> None:
            job.progress(phases.index(name) if name in phases else 0, len(phases), name)

        phase("load")
        with wb.using_model() as base:
            tuned = keeper.get(folder, wb.device)
            check_pair(base, tuned)
            seqs = (tokenize_prompts(base, tuned, req.prompts, req.seq_len) if req.prompts is not None
                    else builtin_prompts(base, req.n_prompts, req.seq_len))  # fmt: skip
            kw = dict(targets=req.targets, steer_layer=req.steer_layer, steer_prompt=steer_prompt, coefs=coefs,
                      generate=req.generate, progress=False)  # fmt: skip
            if req.crosscoder:
                from mechscope.diff.crosscoder_run import diff_with_crosscoder

                res = diff_with_crosscoder(base, tuned, seqs, cfg, width=req.width, k=req.k, tokens=req.tokens,
                                           cc_layer=req.cc_layer, steps_tokens=req.steps_tokens, phase=phase, **kw)  # fmt: skip
            else:
                from mechscope.diff.report import diff_models

                phase("diff")
                res = diff_models(base, tuned, seqs, cfg, **kw)
        job.progress(len(phases), len(phases), "done")
        return finite_json(res.to_dict())

    return wb.jobs.submit("diff", work).to_dict()
