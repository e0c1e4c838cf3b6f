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
(:mod:`mechscope.checkpoints`). No pickle anywhere. The learning-rate schedule is a function of the step, so it needs no state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mechscope.checkpoints import (ADAM_KEYS, CHECKPOINT_FILE, check_checkpoint_dir, checkpoint_dir, read_checkpoint,
                                   remove_checkpoint, write_checkpoint)  # fmt: skip
from mechscope.errors import CheckpointMismatchError

FORMAT = "mechscope-tuned-lens-checkpoint/1"
_REQUIRED = ("weight", "bias", "scale", "per_translator", "rng")
_LABELS = frozenset({"model"})
"""Identity keys that are labels (the model's name comes from its folder or file name), not compared."""


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


def save_checkpoint(directory: Path, identity: dict, step: int, tensors: dict[str, Tensor], history: list[float],
                    seconds: float, resumed: list[int]) -> Path:  # fmt: skip
    """Write one checkpoint atomically (:func:`mechscope.checkpoints.write_checkpoint`); returns its JSON path."""
    record = {"history": history, "seconds": round(seconds, 3), "resumed": resumed}
    return write_checkpoint(directory, FORMAT, identity, step, tensors, record)


def load_checkpoint(directory: Path, identity: dict) -> TrainState | None:
    """The checkpoint in ``directory``, or None if there is none. Refuses (one line) a checkpoint made for
    another model, config or training text, and an unreadable one."""
    fix = f"delete {directory} or pass --fresh to start over"
    got = read_checkpoint(directory, FORMAT, identity, kind="tuned-lens", fix=fix, required=_REQUIRED, labels=_LABELS,
                          what=_what)  # fmt: skip
    if got is None:
        return None
    meta, tensors = got
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


__all__ = ["ADAM_KEYS", "CHECKPOINT_FILE", "FORMAT", "TrainState", "check_checkpoint_dir", "checkpoint_dir", "contexts_digest",
           "load_checkpoint", "pack_state", "remove_checkpoint", "restore_state", "save_checkpoint"]
