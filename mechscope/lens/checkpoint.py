"""Tuned-lens training checkpoints: written atomically, resumed bit for bit, refused when they do not match.

A checkpoint is a directory next to the lens's output (``<out>.checkpoint``) holding

- ``state-<step>.safetensors``: the translators (``weight``, ``bias``, ``scale``), Adam's moments and
  step counts (``adam.<param>.exp_avg`` / ``exp_avg_sq`` / ``step``), the running mean of the last
  steps' KL (``per_translator``) and the position-sampling generator's state (``rng``, uint8);
- ``checkpoint.json`` (:data:`CHECKPOINT_FILE`): format, model name and fingerprint, the training
  config, a SHA-256 of the training contexts, the step reached, the KL history, seconds spent so far,
  and the name of its tensors file.

Writing (through :mod:`mechscope.io`): the tensors go to a temporary file renamed to
``state-<step>.safetensors``; then the JSON is written the same way. The JSON is the commit point: a kill at any moment leaves either
the previous checkpoint or the new one, never a mix (older tensor files are deleted only afterwards).
A checkpoint folder that holds anything else (a user's files) is refused, never written into or deleted
(:func:`check_checkpoint_dir`, :func:`remove_checkpoint`). No pickle anywhere. The learning-rate schedule is a function of the step, so it needs no state.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mechscope.errors import CheckpointMismatchError

CHECKPOINT_FILE = "checkpoint.json"
FORMAT = "mechscope-tuned-lens-checkpoint/1"
ADAM_KEYS = ("exp_avg", "exp_avg_sq", "step")
_STATE_RE = re.compile(r"^state-\d+\.safetensors$")
_REQUIRED = ("weight", "bias", "scale", "per_translator", "rng")
_LABELS = frozenset({"model"})
"""Identity keys that are labels (the model's name comes from its folder or file name), not compared."""


def checkpoint_dir(out: str | Path) -> Path:
    """Where training for a lens saved at ``out`` keeps its checkpoint: ``<out>.checkpoint`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.name}.checkpoint")


@dataclass
class TrainState:
    """Everything a resumed run needs besides the config (which the caller checks against)."""

    step: int
    """Optimiser steps done."""
    tensors: dict[str, Tensor]
    history: list[float]
    seconds: float
    """Training time spent before this resume."""
    resumed: list[int]
    """Steps at which earlier runs resumed (this one included once it continues)."""


def contexts_digest(contexts: Tensor) -> str:
    """SHA-256 of the training contexts (ids as int64, row-major): a changed corpus is a different run."""
    return hashlib.sha256(contexts.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()


def pack_state(lens, opt: torch.optim.Optimizer, per_translator: Tensor, gen: torch.Generator) -> dict[str, Tensor]:
    """The tensors of a checkpoint (float32 / uint8, CPU, contiguous)."""
    out = {"weight": lens.weight.detach(), "bias": lens.bias.detach(), "scale": lens.scale.detach(),
           "per_translator": per_translator, "rng": gen.get_state()}  # fmt: skip
    for name, p in (("weight", lens.weight), ("bias", lens.bias)):
        state = opt.state.get(p, {})
        for key in ADAM_KEYS:
            if key in state:
                out[f"adam.{name}.{key}"] = torch.as_tensor(state[key])
    return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}


def restore_state(tensors: dict[str, Tensor], lens, opt: torch.optim.Optimizer, gen: torch.Generator) -> Tensor:
    """Load translators, Adam state and the generator from ``tensors``; returns ``per_translator``."""
    with torch.no_grad():
        for name in ("weight", "bias", "scale"):
            getattr(lens, name).copy_(tensors[name])
    for name, p in (("weight", lens.weight), ("bias", lens.bias)):
        keys = [k for k in ADAM_KEYS if f"adam.{name}.{k}" in tensors]
        if keys:
            opt.state[p] = {k: tensors[f"adam.{name}.{k}"].clone().to(p.device) if k != "step"
                            else tensors[f"adam.{name}.{k}"].clone() for k in keys}  # fmt: skip
    gen.set_state(tensors["rng"])
    return tensors["per_translator"].clone()


def _ours(name: str) -> bool:
    """A file name a checkpoint writes: its JSON, its tensors, or a temporary of either."""
    return name == CHECKPOINT_FILE or _STATE_RE.match(name) is not None or ".tmp-" in name


def check_checkpoint_dir(directory: Path) -> Path:
    """Refuse (one line), before training, a checkpoint path that holds anything a checkpoint did not write."""
    from mechscope.io import OutputPathError

    directory = Path(directory).expanduser()
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir():
            raise OutputPathError(f"the checkpoint path {directory} exists and is not a folder: move it or choose another --out")
        foreign = sorted(p.name for p in directory.iterdir() if not _ours(p.name))
        if foreign:
            raise OutputPathError(f"the checkpoint folder {directory} holds files mechscope did not write ({', '.join(foreign[:3])}): "
                                  "move them or choose another --out")  # fmt: skip
    return directory


def remove_checkpoint(directory: Path) -> None:
    """Delete a checkpoint (``--fresh``): only the files a checkpoint writes, then the folder if it is empty."""
    directory = check_checkpoint_dir(directory)
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        p.unlink(missing_ok=True)
    directory.rmdir()


def save_checkpoint(directory: Path, identity: dict, step: int, tensors: dict[str, Tensor], history: list[float],
                    seconds: float, resumed: list[int]) -> Path:  # fmt: skip
    """Write one checkpoint atomically (see the module docstring); returns its JSON path."""
    from mechscope.io import write_json, write_safetensors

    directory = check_checkpoint_dir(Path(directory))
    directory.mkdir(parents=True, exist_ok=True)
    name = f"state-{step:07d}.safetensors"
    write_safetensors(directory / name, tensors)
    meta = {"format": FORMAT, **identity, "step": step, "tensors": name, "history": history,
            "seconds": round(seconds, 3), "resumed": resumed, "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
    write_json(directory / CHECKPOINT_FILE, meta, indent=None)
    for old in directory.glob("state-*.safetensors"):  # only once the JSON points at the new file
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / CHECKPOINT_FILE


def load_checkpoint(directory: Path, identity: dict) -> TrainState | None:
    """The checkpoint in ``directory``, or None if there is none. Refuses (one line) a checkpoint made for
    another model, config or training text, and an unreadable one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        return None
    fix = f"delete {directory} or pass --fresh to start over"
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or not _STATE_RE.match(str(meta.get("tensors"))):
            raise ValueError("not a checkpoint record")
        tensors = load_file(str(directory / meta["tensors"]))
        if missing := [k for k in _REQUIRED if k not in tensors]:
            raise KeyError(missing[0])
    except (ValueError, OSError, KeyError, TypeError, SafetensorError, UnicodeDecodeError) as exc:
        raise CheckpointMismatchError(f"the checkpoint at {directory} is unreadable ({type(exc).__name__}): {fix}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{path} is not a tuned-lens checkpoint (format {meta.get('format')!r}): {fix}")
    for key, want in identity.items():
        if key in _LABELS:  # a name, not content: the same weights under another folder name still resume
            continue
        have = meta.get(key)
        if have != want:
            raise CheckpointMismatchError(
                f"the checkpoint at {directory} was made with another {_what(key, have, want)}: {fix}"
            )
    try:
        return TrainState(int(meta["step"]), tensors, [float(x) for x in meta["history"]], float(meta["seconds"]),
                          [int(x) for x in meta["resumed"]])  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointMismatchError(f"the checkpoint at {directory} is corrupted ({type(exc).__name__} in "
                                      f"{CHECKPOINT_FILE}): {fix}") from None  # fmt: skip


def _what(key: str, have, want) -> str:
    """Name the first difference in words (``training setting lr=0.003, not 0.001``)."""
    if key == "train" and isinstance(have, dict):
        for k in sorted(set(have) | set(want)):
            if have.get(k) != want.get(k):
                return f"training setting {k}={have.get(k)!r}, not {want.get(k)!r}"
    if key == "fingerprint":
        return f"model (fingerprint {have}, this model is {want})"
    if key == "contexts_sha256":
        return "training text (the contexts' checksum differs: another corpus or tokenizer)"
    return f"{key} ({have!r}, not {want!r})"
