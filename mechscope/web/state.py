"""The server's state: the model (loaded once), the one lock every use of it holds, the tuned lens, the
runs roots and the job manager. Routes reach it as ``request.app.state.workbench``.

Every route that runs the model does so inside ``with workbench.using_model() as model:``: requests
run one at a time on the model, so hooks of two requests never interleave (hooks themselves live only
inside the library's ``with`` blocks and are removed in ``finally``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mechscope.web.config import WebConfig
from mechscope.web.jobs import JobManager

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel


class Workbench:
    """The model behind the lock, the config and the jobs of one server."""

    def __init__(self, model: HookedModel | None = None, model_name: str = "gemma-3-270m", device: str = "auto",
                 config: WebConfig | None = None):  # fmt: skip
        self.config = config or WebConfig()
        self.model_name = model.name if model is not None else model_name
        self.device = device
        self._model = model
        self.load_seconds: float | None = 0.0 if model is not None else None
        self.lock = threading.Lock()
        """Held while the model runs: one request (or job step) at a time."""
        self.jobs = JobManager(self.config.job_workers, self.config.keep_jobs)
        self._tuned: dict[str, Any] = {}

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> HookedModel:
        if self._model is None:  # called with the lock held
            import mechscope

            start = time.perf_counter()
            self._model = mechscope.load(self.model_name, device=self.device)
            self.load_seconds = time.perf_counter() - start
        return self._model

    def load(self) -> HookedModel:
        """Load the model now (``mechscope serve`` does this before it starts listening)."""
        with self.lock:
            return self._load()

    @contextlib.contextmanager
    def using_model(self) -> Iterator[HookedModel]:
        """The model, with the lock held for the block (loaded on first use)."""
        with self.lock:
            yield self._load()

    def tuned_lens_dir(self, model: HookedModel) -> Path:
        from mechscope.lens.tuned import default_lens_dir

        return default_lens_dir(model)

    def has_tuned_lens(self, model: HookedModel) -> bool:
        from mechscope.lens.tuned import CONFIG_FILE, WEIGHTS_FILE

        d = self.tuned_lens_dir(model)
        return (d / CONFIG_FILE).is_file() and (d / WEIGHTS_FILE).is_file()

    def tuned_lens(self, model: HookedModel):
        """The model's tuned lens from its default place, loaded once (call with the lock held)."""
        from mechscope.lens.tuned import load_tuned_lens

        key = model.fingerprint
        if key not in self._tuned:
            self._tuned[key] = load_tuned_lens(self.tuned_lens_dir(model), model)  # one-line error when missing
        return self._tuned[key]

    def info(self) -> dict:
        """What the home page shows: the model (and its sizes once loaded), limits, roots."""
        out: dict[str, Any] = {"model": self.model_name, "loaded": self.loaded, "limits": self.config.limits(),
                               "runs": [str(r) for r in self.config.runs]}  # fmt: skip
        if self._model is not None:
            m = self._model
            out.update(load_seconds=self.load_seconds, fingerprint=m.fingerprint, device=str(m.device),
                       config={k: v for k, v in vars(m.cfg).items() if isinstance(v, (int, float, str, bool))})  # fmt: skip
            out["tuned_lens"] = self.has_tuned_lens(m)
        return out

    def close(self) -> None:
        self.jobs.shutdown()
