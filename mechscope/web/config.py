"""The workbench's limits and roots: one frozen config, the same object for ``mechscope serve``'s flags and
:func:`mechscope.web.app.create_app`. Imports no torch and no FastAPI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mechscope.errors import ConfigError

LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class WebConfig:
    """Limits and places of one workbench server."""

    runs: tuple[Path, ...] = field(default_factory=tuple)
    """Directories the workbench may read runs, SAEs, stores and tensor files from (anything else is refused)."""
    max_body_bytes: int = 1 << 20
    """Largest request body accepted; a larger one gets 413."""
    max_prompt_chars: int = 4000
    """Longest prompt accepted, in characters; a longer one gets 422 (the model's context window also applies)."""
    max_generate: int = 64
    """Most tokens one request may generate."""
    max_top_k: int = 50
    """Largest top-k a request may ask for."""
    job_workers: int = 1
    """Background jobs running at once (the others wait in the queue)."""
    keep_jobs: int = 50
    """Finished jobs remembered for polling; older ones are forgotten."""

    def __post_init__(self):
        object.__setattr__(self, "runs", tuple(Path(r).expanduser().resolve() for r in self.runs))
        for r in self.runs:
            if not r.is_dir():
                raise ConfigError(f"--runs {r} is not a directory: give an existing folder of runs, SAEs or stores")
        checks = {"max_body_bytes": self.max_body_bytes >= 1024, "max_prompt_chars": self.max_prompt_chars >= 1,
                  "max_generate": self.max_generate >= 0, "max_top_k": self.max_top_k >= 1,
                  "job_workers": self.job_workers >= 1, "keep_jobs": self.keep_jobs >= 1}  # fmt: skip
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid workbench setting {bad[0]}={getattr(self, bad[0])!r}")

    def limits(self) -> dict:
        return {"max_body_bytes": self.max_body_bytes, "max_prompt_chars": self.max_prompt_chars,
                "max_generate": self.max_generate, "max_top_k": self.max_top_k}  # fmt: skip
