"""The run directory: file names, atomic writes, checkpoints, training state and loading.

Layout of ``mechscope grok train --out DIR``::

    DIR/config.json                   GrokConfig (the flags of the run)
    DIR/state.safetensors             latest training state: stacked weights, AdamW moments, Grokfast
                                      filter, step, and the logged metrics (one row per seed)
    DIR/progress.json                 human-readable summary: step, epochs, complete, wall-clock
    DIR/seed_<S>/checkpoints/epoch_<E>.safetensors   weights of seed S after E updates
    DIR/seed_<S>/analysis.json        written by ``mechscope grok analyze``
    DIR/seed_<S>/measures.safetensors progress measures at every checkpoint (analyze)

Every file is written through ``mechscope.io`` (a temporary name in the same folder, flushed to disk and
moved into place with ``os.replace``), so a kill leaves either the old or the new file, never half of
one. Nothing is pickled.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mechscope.errors import RunError
from mechscope.io import read_safetensors as io_read_safetensors
from mechscope.io import write_json, write_safetensors  # noqa: F401 (the run's writers: rundir.write_json, ...)
from mechscope.labs.grokking.config import GrokConfig
from mechscope.labs.grokking.model import PARAM_NAMES, param_shapes

CONFIG_FILE = "config.json"
STATE_FILE = "state.safetensors"
PROGRESS_FILE = "progress.json"
CHECKPOINT_DIR = "checkpoints"
ANALYSIS_FILE = "analysis.json"
MEASURES_FILE = "measures.safetensors"
CHECKPOINT_FORMAT = "mechscope-grok-checkpoint/1"
_CHECKPOINT_RE = re.compile(r"^epoch_(\d+)\.safetensors$")


# ------------------------------------------------------------------ files
# The writers are mechscope.io's write_json / write_safetensors (imported above: temporary name in the
# same folder, fsync, os.replace); the readers turn a missing or corrupted file into a RunError.
def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing; rerun `mechscope grok train --out {path.parent}`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is corrupted ({exc.__class__.__name__}); delete it and rerun training") from None


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """A run's tensors, checked against the checksum written with them (one-line error if altered)."""
    return io_read_safetensors(path, fix="delete it and rerun")


# ------------------------------------------------------------------ schedule
def checkpoint_epochs(epochs: int, n_regular: int, n_log: int) -> list[int]:
    """Epochs at which weights are saved: ``n_regular`` evenly spaced plus ``n_log`` log-spaced
    (dense early, where memorisation happens), always including 0 and ``epochs``."""
    regular = np.rint(np.linspace(0, epochs, n_regular + 1)).astype(int)
    log = np.rint(np.geomspace(1, epochs, n_log)).astype(int) if n_log > 0 else np.array([], dtype=int)
    return sorted({0, epochs, *regular.tolist(), *log.tolist()})


# ------------------------------------------------------------------ paths
def seed_dir(run_dir: Path, seed: int) -> Path:
    return run_dir / f"seed_{seed}"


def checkpoint_path(run_dir: Path, seed: int, epoch: int) -> Path:
    return seed_dir(run_dir, seed) / CHECKPOINT_DIR / f"epoch_{epoch:06d}.safetensors"


def save_checkpoint(run_dir: Path, seed: int, epoch: int, weights: dict[str, Tensor]) -> None:
    """Weights of one seed (no seed axis) after ``epoch`` updates."""
    meta = {"format": CHECKPOINT_FORMAT, "epoch": str(epoch), "seed": str(seed)}
    write_safetensors(checkpoint_path(run_dir, seed, epoch), weights, meta)


# ------------------------------------------------------------------ loading a run
RUN_FORMAT = "mechscope-grok-run/1"
"""``config.json``'s ``format``: what makes a folder a grokking run."""


def check_run_dir(run_dir: Path) -> Path:
    """A folder ``train`` may write a run into: new, empty, or holding a run (to resume). A folder with
    anything else in it — a user's files — is refused with one line before a byte is written."""
    from mechscope.io import OutputPathError, check_output_file

    if run_dir.exists() or run_dir.is_symlink():
        if not run_dir.is_dir():
            raise OutputPathError(f"--out {run_dir} exists and is not a folder: choose a new folder for the run")
        if (run_dir / CONFIG_FILE).is_file():
            data = read_json(run_dir / CONFIG_FILE)
            if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
                raise OutputPathError(f"{run_dir} holds a {CONFIG_FILE} that is not a grokking run's: "
                                      "choose a new folder for the run")  # fmt: skip
            return run_dir
        entries = sorted(p.name for p in run_dir.iterdir() if ".tmp" not in p.name)
        if entries:
            raise OutputPathError(f"{run_dir} is a folder mechscope did not create ({', '.join(entries[:3])}"
                                  f"{', …' if len(entries) > 3 else ''}): choose a new folder for the run")  # fmt: skip
        return run_dir
    check_output_file(run_dir / CONFIG_FILE, create_parents=True)  # the folder can be created
    return run_dir


def load_config(run_dir: Path) -> GrokConfig:
    if not run_dir.exists():
        raise RunError(f"run directory {run_dir} does not exist; create it with `mechscope grok train --out {run_dir}`")
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a directory")
    if not (run_dir / CONFIG_FILE).exists():
        raise RunError(f"{run_dir} is not a grokking run (no {CONFIG_FILE}); train one with `mechscope grok train --out {run_dir}`")
    data = read_json(run_dir / CONFIG_FILE)
    try:
        return GrokConfig.from_dict(data["config"])
    except (KeyError, TypeError) as exc:
        raise RunError(f"{run_dir / CONFIG_FILE} is corrupted (missing {exc}); delete the run and retrain") from None


@dataclass(frozen=True)
class Run:
    """One seed of a finished (or partly finished) run, read back for analysis."""

    dir: Path
    """The run directory (``--out`` of train)."""
    config: GrokConfig
    """The run's config."""
    seed: int
    """Which seed this view reads."""
    seed_index: int
    """Position of ``seed`` in the stacked state."""
    epochs: list[int]
    """Epochs that have a checkpoint, ascending."""
    metrics: dict[str, np.ndarray]
    """Logged curves of this seed: ``epoch``, ``train_loss``, ``train_acc`` (every epoch),
    ``eval_epoch``, ``test_loss``, ``test_acc`` (every ``eval_every``), ``wall_s`` (per epoch)."""
    step: int
    """Updates completed."""
    complete: bool
    """Whether training reached ``config.epochs``."""

    @classmethod
    def open(cls, run_dir: str | Path, seed: int | None = None) -> Run:
        run_dir = Path(run_dir)
        cfg = load_config(run_dir)
        seed = cfg.seed if seed is None else seed
        if seed not in cfg.seeds:
            raise RunError(f"seed {seed} is not in run {run_dir} (seeds {cfg.seeds[0]}..{cfg.seeds[-1]})")
        index = cfg.seeds.index(seed)
        if not (run_dir / STATE_FILE).exists():
            raise RunError(f"{run_dir} has no {STATE_FILE} (training never saved); rerun `mechscope grok train --out {run_dir}`")
        state = read_safetensors(run_dir / STATE_FILE)
        try:
            step = int(state["step"].item())
            n = step + 1
            metrics = {
                "epoch": np.arange(n),
                "train_loss": state["metrics.train_loss"][index, :n].numpy(),
                "train_acc": state["metrics.train_acc"][index, :n].numpy(),
                "wall_s": state["metrics.wall_s"][:n].numpy(),
            }
            n_eval = int(state["metrics.n_eval"].item())
            metrics["eval_epoch"] = state["metrics.eval_epoch"][:n_eval].numpy()
            metrics["test_loss"] = state["metrics.test_loss"][index, :n_eval].numpy()
            metrics["test_acc"] = state["metrics.test_acc"][index, :n_eval].numpy()
        except (KeyError, IndexError, RuntimeError) as exc:
            raise RunError(f"{run_dir / STATE_FILE} is corrupted (bad field {exc}); delete the run and retrain") from None
        ckpt_dir = seed_dir(run_dir, seed) / CHECKPOINT_DIR
        found = sorted(int(m.group(1)) for f in (ckpt_dir.iterdir() if ckpt_dir.is_dir() else []) if (m := _CHECKPOINT_RE.match(f.name)))
        epochs = [e for e in found if e <= step]
        if not epochs:
            raise RunError(f"{run_dir} has no checkpoints for seed {seed}; rerun `mechscope grok train --out {run_dir}`")
        return cls(run_dir, cfg, seed, index, epochs, metrics, step, step >= cfg.epochs)

    @property
    def seed_dir(self) -> Path:
        return seed_dir(self.dir, self.seed)

    @property
    def final_epoch(self) -> int:
        return self.epochs[-1]

    def weights(self, epoch: int | None = None) -> dict[str, Tensor]:
        """Weights at a checkpoint (default: the last), with a seed axis of size 1, float32."""
        epoch = self.final_epoch if epoch is None else epoch
        path = checkpoint_path(self.dir, self.seed, epoch)
        tensors = read_safetensors(path)
        shapes = param_shapes(self.config.model)
        out = {}
        for name in PARAM_NAMES:
            w = tensors.get(name)
            if w is None or tuple(w.shape) != shapes[name]:
                raise RunError(f"{path} is corrupted (weight {name} missing or misshapen); delete it and rerun training")
            out[name] = w[None].to(torch.float32)
        return out
