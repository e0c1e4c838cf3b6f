"""Routes, one module per page (``lens``, ``intervene``, ...) plus ``core`` (info, pages, hooks, jobs, runs).
Each module exposes ``router``; request bodies are pydantic models that refuse unknown fields."""

from __future__ import annotations


def workbench(request):
    """The :class:`~mechscope.web.state.Workbench` of the app answering ``request``."""
    return request.app.state.workbench
