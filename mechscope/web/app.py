"""The FastAPI app factory: ``create_app(model=...)`` for tests and notebooks, ``mechscope serve`` for people.

Routes come from :data:`mechscope.web.pages.PAGES` (each page's ``routes`` module) plus ``routes/core.py``;
the page itself is ``static/index.html`` with one JS module per page; Plotly's bundle is served from the
installed ``plotly`` package (``/vendor/plotly.min.js``), never from a CDN.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mechscope.errors import ConfigError
from mechscope.web.config import WebConfig
from mechscope.web.pages import PAGES
from mechscope.web.state import Workbench

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

STATIC = Path(__file__).parent / "static"
"""The page's files (package data: shipped in wheels and editable installs alike)."""


def plotly_bundle() -> Path:
    """The ``plotly.min.js`` shipped inside the ``plotly`` Python package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise ConfigError(f"the plotly package at {path.parent.parent} has no package_data/plotly.min.js: "
                          "reinstall it (`make install`)")  # fmt: skip
    return path


def create_app(model: HookedModel | None = None, model_name: str = "gemma-3-270m", runs: Sequence[str | Path] = (),
               *, device: str = "auto", config: WebConfig | None = None):  # fmt: skip
    """A FastAPI app over ``model`` (or ``model_name``, loaded on first use, once).

    runs: folders the workbench may read runs, SAEs, stores and tensor files from (everything else is
    refused). config: limits (body size, prompt length, ...); its ``runs`` is used when ``runs`` is empty.
    """
    from fastapi import FastAPI
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    from mechscope.web import errors
    from mechscope.web.security import BodySizeLimit

    if config is None:
        config = WebConfig(runs=tuple(runs))
    elif runs:
        from dataclasses import replace

        config = replace(config, runs=tuple(runs))
    wb = Workbench(model, model_name, device, config)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        wb.close()  # cancel background jobs when the server stops

    app = FastAPI(title="mechscope workbench", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)  # fmt: skip
    app.state.workbench = wb
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)

    from mechscope.web.routes import core

    app.include_router(core.router)
    for page in PAGES:
        if page.routes:
            app.include_router(importlib.import_module(f"mechscope.web.routes.{page.routes}").router)

    bundle = plotly_bundle()

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js():
        return FileResponse(bundle, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
