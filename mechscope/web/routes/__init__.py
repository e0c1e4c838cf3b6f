"""Routes, one module per page (``lens``, ``intervene``, ...) plus ``core`` (info, pages, hooks, jobs, runs).
Each module exposes ``router``; request bodies are pydantic models that refuse unknown fields."""

from __future__ import annotations

import json
from typing import Any

NON_FINITE_FIELD = "non_finite"
"""Added to an answer that had NaN or ±inf values (sent as null): where they were, as in ``--json``."""


def workbench(request):
    """The :class:`~mechscope.web.state.Workbench` of the app answering ``request``."""
    return request.app.state.workbench


def answer(obj: Any):
    """A JSON response for a library result (``to_dict()``): encoded once with :func:`json.dumps` (FastAPI's
    own encoder walks a lens grid 4× slower), NaN and ±inf sent as null and listed under ``non_finite``."""
    from fastapi.responses import Response

    try:
        body = json.dumps(obj, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError:  # a NaN or an infinity somewhere: the slow, careful path
        from mechscope.io import finite_json

        found: list[str] = []
        clean = finite_json(obj, found)
        if found and isinstance(clean, dict):
            clean[NON_FINITE_FIELD] = found
        body = json.dumps(clean, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), media_type="application/json")
