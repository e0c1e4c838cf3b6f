"""What the workbench refuses: oversize bodies (413), oversize prompts (422), paths outside the ``--runs``
roots (403: ``../``, absolute paths and symlinks out of a root alike) and tensor files out of them.

Nothing the workbench reads is unpickled: artifacts are safetensors + JSON read through :mod:`mechscope.io`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mechscope.errors import AccessError, PromptError
from mechscope.model.tokens import check_prompt


def check_web_prompt(prompt: str, max_chars: int) -> str:
    """:func:`mechscope.model.tokens.check_prompt` plus the workbench's length cap (one line)."""
    check_prompt(prompt)
    if len(prompt) > max_chars:
        raise PromptError(f"the prompt has {len(prompt):,} characters; the workbench takes at most {max_chars:,} "
                          "(start `mechscope serve` with a larger --max-prompt-chars, or use the CLI)")  # fmt: skip
    return prompt


def resolve_under_roots(path: str | os.PathLike, roots: Sequence[Path]) -> Path:
    """``path`` resolved (symlinks followed) if it lies inside one of ``roots``; else :class:`AccessError`.

    A relative path is taken relative to each root in turn (the first that holds it wins, else the
    first root); an absolute path must resolve inside a root. ``..`` and links that lead out are refused.
    """
    text = os.fspath(path)
    if not isinstance(text, str) or not text or "\x00" in text:
        raise AccessError(f"not a usable path: {text!r:.80}")
    if not roots:
        raise AccessError(f"{text!r:.120} is refused: this workbench reads no files (start `mechscope serve` "
                          "with --runs DIR to allow a folder)")  # fmt: skip
    p = Path(text).expanduser()
    candidates = [p] if p.is_absolute() else [root / p for root in roots]
    inside = [r for r in (c.resolve() for c in candidates) if any(_inside(r, root) for root in roots)]
    if inside:
        return next((r for r in inside if r.exists()), inside[0])
    raise AccessError(f"{text!r:.120} lies outside the workbench's --runs folders "
                      f"({', '.join(str(r) for r in roots)}): give a path inside one of them")  # fmt: skip


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_tensor_files(interventions: Iterable, roots: Sequence[Path]):
    """Interventions with every tensor-file reference (``{"file": ..., "key": ...}``) resolved inside the
    roots (a file outside them is refused before anything reads it)."""
    from dataclasses import replace

    from mechscope.model.interventions import TensorRef

    out = []
    for iv in interventions:
        changes = {}
        for name in iv.tensor_fields:
            ref = getattr(iv, name)
            if isinstance(ref, TensorRef) and ref.file is not None:
                changes[name] = TensorRef(file=str(resolve_under_roots(ref.file, roots)), key=ref.key)
        out.append(replace(iv, **changes) if changes else iv)
    return out


def parse_interventions(data) -> list:
    """Interventions from request JSON (an object or a list), validated by
    :func:`mechscope.model.interventions.from_json` exactly as ``mechscope run --intervene`` does."""
    from mechscope.model.interventions import from_json

    if data is None:
        return []
    from mechscope.errors import InterventionError

    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError:
        raise InterventionError("interventions hold NaN or Infinity: numbers must be finite") from None
    return from_json(text)


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` (declared or streamed) gets 413 with a message."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._refuse(send)
        seen = 0
        chunks: list[dict] = []
        while True:  # read the body first (it is small by construction), counting
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                return await self._refuse(send)
            chunks.append(message)
            if not message.get("more_body", False):
                break

        async def replay():
            return chunks.pop(0) if chunks else await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, send):
        body = json.dumps({"error": f"the request body is larger than {self.max_bytes:,} bytes: send less "
                                    "(a shorter prompt, fewer or smaller interventions)"}).encode()  # fmt: skip
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
