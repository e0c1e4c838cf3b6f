"""Exceptions → JSON answers, so the server keeps serving whatever a request does.

- a mechscope error (:class:`~mechscope.errors.MechscopeError`) → 4xx ``{"error": "<its one line>"}``
  (403 for a path outside the roots, 404 for a missing run or job, 422 otherwise);
- malformed JSON → 400, a body that does not fit the route's schema → 422, each with one line;
- anything else → 500 ``{"error": "internal error: <type>: <first line>"}``, logged with its traceback.
"""

from __future__ import annotations

import logging

from mechscope import errors as E
from mechscope.web.jobs import one_line

log = logging.getLogger("mechscope.web")

STATUS: tuple[tuple[type[E.MechscopeError], int], ...] = (
    (E.AccessError, 403),
    (E.OutOfRangeError, 422),
    (E.RunError, 404),
    (E.MechscopeError, 422),
)
"""First match wins (subclasses before their bases)."""


def status_for(exc: E.MechscopeError) -> int:
    return next(code for cls, code in STATUS if isinstance(exc, cls))


def describe_validation(errors: list[dict]) -> tuple[int, str]:
    """One line (and 400 or 422) from FastAPI's validation errors."""
    first = errors[0] if errors else {"type": "", "msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        return 400, f"the request body is not valid JSON ({first.get('ctx', {}).get('error', first.get('msg'))})"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{where}: {first.get('msg', 'invalid')}{more}"


def install(app) -> None:
    """Register the handlers on a FastAPI app."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(E.MechscopeError)
    async def mechscope_error(request, exc: E.MechscopeError):
        return JSONResponse({"error": one_line(exc)}, status_code=status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        code, text = describe_validation(list(exc.errors()))
        return JSONResponse({"error": text}, status_code=code)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        # the server's log gets the traceback too (Starlette re-raises to it after this answer)
        log.error("unexpected error answering %s %s: %s", request.method, request.url.path, one_line(exc))
        return JSONResponse({"error": f"internal error: {one_line(exc)}"}, status_code=500)
