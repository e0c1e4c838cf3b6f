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

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mechscope.errors import CheckpointMismatchError, OutputPathError

CHECKPOINT_FILE = "checkpoint.json"
FORMAT = "mechscope-finetune-checkpoint/1"
ADAM_KEYS = ("exp_avg", "exp_avg_sq", "step")
_STATE_RE = re.compile(r"^state-\d+\.safetensors$")


def checkpoint_dir(out: str | Path) -> Path:
    """Where a fine-tune written to ``out`` keeps its checkpoint: ``<out>.checkpoint`` beside it."""
    out = Path(out).expanduser()
    return out.with_name(f"{out.name}.checkpoint")


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


def _ours(name: str) -> bool:
    return name == CHECKPOINT_FILE or _STATE_RE.match(name) is not None or ".tmp-" in name


def check_checkpoint_dir(directory: Path) -> Path:
    """Refuse (one line), before training, a checkpoint path holding anything a checkpoint did not write."""
    directory = Path(directory).expanduser()
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir():
            raise OutputPathError(f"the checkpoint path {directory} exists and is not a folder: move it or choose another --out")
        foreign = sorted(p.name for p in directory.iterdir() if not _ours(p.name))
        if foreign:
            raise OutputPathError(f"the checkpoint folder {directory} holds files mechscope did not write "
                                  f"({', '.join(foreign[:3])}): move them or choose another --out")  # fmt: skip
    return directory


def remove_checkpoint(directory: Path) -> None:
    """Delete a checkpoint: only the files a checkpoint writes, then the folder if it is empty."""
    directory = check_checkpoint_dir(directory)
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        p.unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:  # pragma: no cover - something appeared meanwhile: leave it
        pass


def save_checkpoint(directory: Path, identity: dict, step: int, tensors: dict[str, Tensor], losses: list[float],
                    seconds: float, resumed: list[int]) -> Path:  # fmt: skip
    """Write one checkpoint atomically (see the module docstring); returns its JSON path."""
    from mechscope.io import write_json, write_safetensors

    directory = check_checkpoint_dir(Path(directory))
    directory.mkdir(parents=True, exist_ok=True)
    name = f"state-{step:07d}.safetensors"
    write_safetensors(directory / name, tensors)
    meta = {"format": FORMAT, **identity, "step": step, "tensors": name, "losses": losses, "seconds": round(seconds, 3),
            "resumed": resumed, "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
    write_json(directory / CHECKPOINT_FILE, meta, indent=None)
    for old in directory.glob("state-*.safetensors"):  # only once the JSON points at the new file
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / CHECKPOINT_FILE


def load_checkpoint(directory: Path, identity: dict) -> TrainState | None:
    """The checkpoint in ``directory``, or None if there is none. Refuses (one line) a checkpoint of another
    base model, config, corpus or precision, and an unreadable one."""
    from mechscope.errors import ArtifactError
    from mechscope.io import read_safetensors

    directory = Path(directory)
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        return None
    fix = f"delete {directory} to start over"
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or not _STATE_RE.match(str(meta.get("tensors"))):
            raise ValueError("not a checkpoint record")
        tensors = read_safetensors(directory / meta["tensors"], fix=fix)
        if "rng" not in tensors:
            raise KeyError("rng")
    except ArtifactError as exc:
        raise CheckpointMismatchError(str(exc)) from None
    except (ValueError, OSError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CheckpointMismatchError(f"the checkpoint at {directory} is unreadable ({type(exc).__name__}): {fix}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{path} is not a fine-tune checkpoint (format {meta.get('format')!r}): {fix}")
    for key, want in identity.items():
        have = meta.get(key)
        if have != want:
            raise CheckpointMismatchError(f"the checkpoint at {directory} was made with another {_what(key, have, want)}: {fix}")
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
