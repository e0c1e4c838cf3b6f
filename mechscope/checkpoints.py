"""Training checkpoints on disk: one folder beside the output, written atomically, refused when foreign.

Used by the tuned-lens trainer (:mod:`mechscope.lens.checkpoint`) and the fine-tune
(:mod:`mechscope.diff.finetune_checkpoint`), which keep their own tensors and identity; this module
owns the folder. A checkpoint is ``<out>.checkpoint/`` holding

- ``state-<step>.safetensors``: the tensors (written first, under a temporary name, then renamed);
- ``checkpoint.json`` (:data:`CHECKPOINT_FILE`): the format, the identity (what must match to resume),
  the step, the caller's record (loss history, seconds, resumes) and the tensors' file name. Written
  last, the same way: it is the commit point, so a kill at any moment leaves the previous checkpoint or
  the new one, never a mix. Older tensor files are deleted only afterwards.

A folder holding anything a checkpoint did not write is refused, never written into or deleted. No pickle.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Collection
from pathlib import Path

from torch import Tensor

from mechscope.errors import ArtifactError, CheckpointMismatchError, OutputPathError

CHECKPOINT_FILE = "checkpoint.json"
ADAM_KEYS = ("exp_avg", "exp_avg_sq", "step")
"""Adam's / AdamW's per-parameter state, as checkpoints store it."""
STATE_RE = re.compile(r"^state-\d+\.safetensors$")


def checkpoint_dir(out: str | Path) -> Path:
    """Where training for an output at ``out`` keeps its checkpoint: ``<out>.checkpoint`` beside it."""
    out = Path(out).expanduser()
    return out.with_name(f"{out.name}.checkpoint")


def _ours(name: str) -> bool:
    """A file name a checkpoint writes: its JSON, its tensors, or a temporary of either."""
    return name == CHECKPOINT_FILE or STATE_RE.match(name) is not None or ".tmp-" in name


def check_checkpoint_dir(directory: str | Path) -> Path:
    """Refuse (one line), before training, a checkpoint path that holds anything a checkpoint did not write."""
    directory = Path(directory).expanduser()
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir():
            raise OutputPathError(f"the checkpoint path {directory} exists and is not a folder: move it or choose another --out")
        foreign = sorted(p.name for p in directory.iterdir() if not _ours(p.name))
        if foreign:
            raise OutputPathError(f"the checkpoint folder {directory} holds files mechscope did not write ({', '.join(foreign[:3])}): "
                                  "move them or choose another --out")  # fmt: skip
    return directory


def remove_checkpoint(directory: str | Path) -> None:
    """Delete a checkpoint (``--fresh``, or after a finished run): only the files a checkpoint writes, then
    the folder if it is empty."""
    directory = check_checkpoint_dir(directory)
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        p.unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:  # pragma: no cover - something appeared meanwhile: leave it
        pass


def write_checkpoint(directory: str | Path, fmt: str, identity: dict, step: int, tensors: dict[str, Tensor],
                     record: dict) -> Path:  # fmt: skip
    """Write one checkpoint atomically (see the module docstring); returns its JSON path."""
    from mechscope.io import write_json, write_safetensors

    directory = check_checkpoint_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"state-{step:07d}.safetensors"
    write_safetensors(directory / name, tensors)
    meta = {"format": fmt, **identity, "step": step, "tensors": name, **record, "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(directory / CHECKPOINT_FILE, meta, indent=None)
    for old in directory.glob("state-*.safetensors"):  # only once the JSON points at the new file
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / CHECKPOINT_FILE


def read_checkpoint(directory: str | Path, fmt: str, identity: dict, *, kind: str, fix: str,
                    required: Collection[str] = ("rng",), labels: Collection[str] = (),
                    what: Callable[[str, object, object], str] | None = None) -> tuple[dict, dict[str, Tensor]] | None:  # fmt: skip
    """``(record, tensors)`` of the checkpoint in ``directory``, or None if there is none.

    Refuses with one :class:`CheckpointMismatchError` line ending in ``fix``: an unreadable checkpoint,
    one of another format (``kind`` names it), one missing a ``required`` tensor, and one whose
    identity differs from ``identity`` in any key but ``labels`` (``what(key, have, want)`` words the
    difference). The caller turns the record into its own state and reports a malformed one."""
    from mechscope.io import read_safetensors

    directory = Path(directory)
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or not STATE_RE.match(str(meta.get("tensors"))):
            raise ValueError("not a checkpoint record")
        tensors = read_safetensors(directory / meta["tensors"], fix=fix)
        if missing := [k for k in required if k not in tensors]:
            raise KeyError(missing[0])
    except (ArtifactError, ValueError, OSError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CheckpointMismatchError(f"the checkpoint at {directory} is unreadable ({type(exc).__name__}): {fix}") from None
    if meta.get("format") != fmt:
        raise CheckpointMismatchError(f"{path} is not a {kind} checkpoint (format {meta.get('format')!r}): {fix}")
    for key, want in identity.items():
        if key in labels:  # a name, not content: the same weights under another folder name still resume
            continue
        have = meta.get(key)
        if have != want:
            words = what(key, have, want) if what is not None else f"{key} ({have!r}, not {want!r})"
            raise CheckpointMismatchError(f"the checkpoint at {directory} was made with another {words}: {fix}")
    return meta, tensors
