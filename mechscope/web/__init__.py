"""The local web workbench: ``mechscope serve``, a FastAPI app over the loaded model plus a plain-JavaScript page.

It renders results and owns no analysis: every route calls the same library function as the CLI and
answers its ``to_dict()`` JSON. Modules (one concept each): ``config`` (limits and roots), ``state``
(the model, its lock, the tuned lens), ``security`` (body cap, prompt cap, paths under the runs roots),
``errors`` (exceptions → JSON), ``jobs`` (background jobs with progress and cancel), ``pages`` (the page
registry), ``app`` (:func:`create_app`), ``routes/`` (one module of routes per page), ``static/`` (the
page: ``index.html``, ``app.js`` and one module per page under ``static/pages/``). docs/web.md says how
to add a page. Importing this package imports no FastAPI; :func:`create_app` does.

    >>> from mechscope.web import create_app                       # doctest: +SKIP
    >>> app = create_app(model=mechscope.load("gemma-3-270m"))      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any):
    """See :func:`mechscope.web.app.create_app`."""
    from mechscope.web.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
