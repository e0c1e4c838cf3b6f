"""Fine-tune checkpoints: written atomically, resumed bit for bit, refused when they do not match.

A checkpoint is a folder beside the output (``<out>.checkpoint``) holding

- ``state-<step>.safetensors``: the trained tensors (``param.<name>``: the trainable weights, or the LoRA
  adapters ``lora.A.<key>`` / ``lora.B.<key>``), AdamW's moments and step counts
  (``adam.<i>.exp_avg`` / ``exp_avg_sq`` / ``step``, ``i`` the parameter's place in the optimiser) and
  torch's CPU generator state (``rng``, uint8);
- ``checkpoint.json`` (:data:`CHECKPOINT_FILE`): format, the identity (base fingerprint, config, corpus
  checksum, precision), the step reached, the loss curve, seconds and tokens trained so far.

The tensors are written first under a temporary name and renamed, then the JSON the same way: the JSON
is the commit point, so a kill at any moment leaves the previous checkpoint or the new one. The data
order is a function of the seed and the step, and the learning rate one of the step, so neither needs
state. A folder holding anything a checkpoint did not write is refused, never written into or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mechscope.checkpoints import (ADAM_KEYS, CHECKPOINT_FILE, check_checkpoint_dir, checkpoint_dir, read_checkpoint,
                                   remove_checkpoint, write_checkpoint)  # fmt: skip
from mechscope.errors import CheckpointMismatchError

FORMAT = "mechscope-finetune-checkpoint/1"


@dataclass
class TrainState:
    """What a resumed run reads back besides the tensors."""

    step: int
    tensors: dict[str, Tensor]
    losses: list[float]
    seconds: float
    resumed: list[int]


def pack_state(params: dict[str, Tensor], opt: torch.optim.Optimizer) -> dict[str, Tensor]:
    """The tensors of a checkpoint: ``params`` (name -> parameter), AdamW's state, torch's CPU RNG."""
    out = {f"param.{k}": v.detach() for k, v in params.items()}
    for i, p in enumerate(opt.param_groups[0]["params"]):
        for key, value in opt.state.get(p, {}).items():
            if key in ADAM_KEYS:
                out[f"adam.{i}.{key}"] = torch.as_tensor(value)
    out["rng"] = torch.get_rng_state()
    return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}


def restore_state(tensors: dict[str, Tensor], params: dict[str, Tensor], opt: torch.optim.Optimizer) -> None:
    """Put the checkpoint's weights, AdamW state and RNG back (every trained tensor must be there)."""
    missing = [k for k in params if f"param.{k}" not in tensors]
    if missing:
        raise KeyError(missing[0])
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(tensors[f"param.{k}"])
    for i, p in enumerate(opt.param_groups[0]["params"]):
        state = {key: tensors[f"adam.{i}.{key}"].clone() for key in ADAM_KEYS if f"adam.{i}.{key}" in tensors}
        if state:
            opt.state[p] = {k: v if k == "step" else v.to(p.device) for k, v in state.items()}
    torch.set_rng_state(tensors["rng"])


def save_checkpoint(directory: Path, identity: dict, step: int, tensors: dict[str, Tensor], losses: list[float],
                    seconds: float, resumed: list[int]) -> Path:  # fmt: skip
    """Write one checkpoint atomically (:func:`mechscope.checkpoints.write_checkpoint`); returns its JSON path."""
    record = {"losses": losses, "seconds": round(seconds, 3), "resumed": resumed}
    return write_checkpoint(directory, FORMAT, identity, step, tensors, record)


def load_checkpoint(directory: Path, identity: dict) -> TrainState | None:
    """The checkpoint in ``directory``, or None if there is none. Refuses (one line) a checkpoint of another
    base model, config, corpus or precision, and an unreadable one."""
    fix = f"delete {directory} to start over"
    got = read_checkpoint(directory, FORMAT, identity, kind="fine-tune", fix=fix, what=_what)
    if got is None:
        return None
    meta, tensors = got
    try:
        return TrainState(int(meta["step"]), tensors, [float(x) for x in meta["losses"]], float(meta["seconds"]),
                          [int(x) for x in meta["resumed"]])  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointMismatchError(f"the checkpoint at {directory} is corrupted ({type(exc).__name__} in "
                                      f"{CHECKPOINT_FILE}): {fix}") from None  # fmt: skip


def _what(key: str, have, want) -> str:
    """The first difference in words (``setting lr=0.001, not 0.0003``)."""
    if key == "config" and isinstance(have, dict) and isinstance(want, dict):
        for k in sorted(set(have) | set(want)):
            if have.get(k) != want.get(k):
                return f"setting {k}={have.get(k)!r}, not {want.get(k)!r}"
    if key == "base_fingerprint":
        return f"base model (fingerprint {have}, this one is {want})"
    if key == "corpus_sha256":
        return "training text (the contexts' checksum differs)"
    return f"{key} ({have!r}, not {want!r})"


__all__ = ["ADAM_KEYS", "CHECKPOINT_FILE", "FORMAT", "CheckpointMismatchError", "TrainState", "check_checkpoint_dir",
           "checkpoint_dir", "load_checkpoint", "pack_state", "remove_checkpoint", "restore_state", "save_checkpoint"]
