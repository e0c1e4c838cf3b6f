"""Routes every page uses: ``/api/info``, ``/api/pages``, ``/api/hooks``, ``/api/jobs`` and ``/api/runs``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from mechscope.web.pages import PAGES
from mechscope.web.routes import workbench
from mechscope.web.security import resolve_under_roots

router = APIRouter(prefix="/api")


@router.get("/info")
def info(request: Request) -> dict:
    """The model (sizes once loaded), limits, runs roots and pages."""
    return {**workbench(request).info(), "pages": [p.to_dict() for p in PAGES]}


@router.get("/pages")
def pages() -> dict:
    return {"pages": [p.to_dict() for p in PAGES]}


@router.get("/hooks")
def hooks(request: Request) -> dict:
    """Every hook of the model with its shape (symbolic and concrete) and what an edit there may select."""
    with workbench(request).using_model() as model:
        symbolic, concrete = model.hook_shapes(concrete=False), model.hook_shapes()
        out = []
        for name in model.hook_names:
            spec = model.spec(name)
            last = spec.last_dim
            select = ["positions"] + (["heads"] if spec.head_axis is not None else [])
            if spec.kind != "pattern":
                select.append("neurons" if last == "d_mlp" else "dims")
            out.append({"name": name, "layer": spec.layer, "kind": spec.kind, "shape": list(symbolic[name]),
                        "sizes": list(concrete[name]), "select": select})  # fmt: skip
        return {"model": model.name, "hooks": out}


@router.get("/jobs")
def jobs(request: Request) -> dict:
    return {"jobs": workbench(request).jobs.list()}


@router.get("/jobs/{job_id}")
def job(job_id: str, request: Request) -> dict:
    """``{"id", "kind", "state": queued|running|done|failed|cancelled, "progress": {"done", "total",
    "message"}, "result", "error", ...}``."""
    return workbench(request).jobs.snapshot(job_id)


@router.delete("/jobs/{job_id}")
def cancel_job(job_id: str, request: Request) -> dict:
    return workbench(request).jobs.cancel(job_id)


@router.get("/runs")
def runs(request: Request, path: str = "") -> dict:
    """The folders and files at ``path`` inside a ``--runs`` root (the roots themselves when ``path`` is
    empty), with each artifact's kind from its marker. Anything outside the roots is refused (403)."""
    from mechscope.io import read_marker

    roots = workbench(request).config.runs
    if not path:
        return {"path": "", "roots": [str(r) for r in roots], "entries": [_entry(r, read_marker) for r in roots]}
    folder = resolve_under_roots(path, roots)
    if not folder.is_dir():
        from mechscope.errors import RunError

        raise RunError(f"{path!r:.120} is not a folder inside the workbench's --runs folders")
    entries = [_entry(p, read_marker) for p in sorted(folder.iterdir())[:1000] if not p.name.startswith(".")]
    return {"path": str(folder), "entries": entries}


def _entry(p, read_marker) -> dict:
    marker = read_marker(p) if p.is_dir() else None
    return {"name": p.name, "path": str(p), "dir": p.is_dir(), "kind": (marker or {}).get("kind")}
