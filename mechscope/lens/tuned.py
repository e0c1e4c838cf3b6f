"""TunedLens: one affine translator per residual row, saved as safetensors + JSON for one model.

A translator maps a row's residual ``h`` to ``h + A h + s·b`` before the model's own final norm and
unembedding (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with the Tuned
Lens"). ``A`` and ``b`` start at zero, so an untrained tuned lens *is* the logit lens, exactly. The
last row (the final block's output) has no translator: it is the model output.

Files (names are constants): ``tuned_lens.safetensors`` holds ``weight`` [translator, d_model,
d_model], ``bias`` [translator, d_model] and ``scale`` [translator] (each row's residual RMS, the unit
of its bias); ``tuned_lens.json`` holds the hook of each translator, the
model's name and fingerprint, the training config and its results; ``mechscope.json`` is the artifact
marker (:mod:`mechscope.io`: kind, fingerprint, checksums). Loading for another model is
refused with one line. The default place is ``$MECHSCOPE_HOME/lenses/<model>-<fingerprint>/tuned``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mechscope.errors import LensMismatchError, RunError
from mechscope.lens.rows import Row, lens_rows

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

WEIGHTS_FILE = "tuned_lens.safetensors"
CONFIG_FILE = "tuned_lens.json"
FORMAT = "mechscope-tuned-lens/1"
KIND = "tuned lens"
"""The artifact kind in mechscope's marker (:mod:`mechscope.io`)."""


def translator_hooks(n_layers: int, sublayers: bool = False) -> list[str]:
    """Hooks that get a translator: every lens row except the last (the model output)."""
    return [r.hook for r in lens_rows(n_layers, sublayers)[:-1]]


def default_lens_dir(model: HookedModel) -> Path:
    from mechscope.model.convert import home

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model.name).strip("_") or "model"
    return home() / "lenses" / f"{safe}-{model.fingerprint}" / "tuned"


class TunedLens(nn.Module):
    """Affine translators ``h ↦ h + A_i h + s_i·b_i``, one per hook in :attr:`hooks`."""

    def __init__(self, hooks: list[str], d_model: int, *, model_name: str = "", fingerprint: str = "",
                 info: dict | None = None):  # fmt: skip
        super().__init__()
        if len(set(hooks)) != len(hooks) or not hooks:
            raise RunError(f"a tuned lens needs distinct translator hooks, got {hooks!r}")
        self.hooks = list(hooks)
        self.d_model = d_model
        self.model_name = model_name
        self.fingerprint = fingerprint
        self.info = dict(info or {})
        self.weight = nn.Parameter(torch.zeros(len(hooks), d_model, d_model))  # [translator, out, in]
        self.bias = nn.Parameter(torch.zeros(len(hooks), d_model))
        # the bias is learned in units of each row's typical residual RMS (set before training), so one
        # learning rate suits rows whose norms differ by orders of magnitude
        self.register_buffer("scale", torch.ones(len(hooks)))
        self._index = {h: i for i, h in enumerate(self.hooks)}

    @classmethod
    def for_model(cls, model: HookedModel, sublayers: bool = False) -> TunedLens:
        """A zero-initialised tuned lens for ``model`` (equal to the logit lens until trained)."""
        lens = cls(translator_hooks(model.cfg.n_layers, sublayers), model.cfg.d_model, model_name=model.name,
                   fingerprint=model.fingerprint)  # fmt: skip
        return lens.to(model.device)

    # --- checks -------------------------------------------------------------------------------------------
    def check_model(self, model: HookedModel) -> None:
        if self.fingerprint and self.fingerprint != model.fingerprint:
            raise LensMismatchError(
                f"this tuned lens was trained for {self.model_name!r} (fingerprint {self.fingerprint}), not for "
                f"{model.name!r} ({model.fingerprint}): train one with `mechscope lens train-tuned --model {model.name}`"
            )
        if self.d_model != model.cfg.d_model:
            raise LensMismatchError(f"this tuned lens has d_model {self.d_model}, the model {model.cfg.d_model}")

    def check_rows(self, rows: list[Row]) -> None:
        missing = [r.hook for r in rows[:-1] if r.hook not in self._index]
        if missing:
            hint = " (it was trained without --sublayers)" if any("resid_mid" in h for h in missing) else ""
            raise LensMismatchError(f"this tuned lens has no translator for {missing[0]}{hint}: retrain it to cover these rows")

    # --- the map ----------------------------------------------------------------------------------------
    def translate(self, resid: Float[Tensor, "row pos d_model"], rows: list[Row]) -> Float[Tensor, "row pos d_model"]:
        """Each row's residual through its translator (rows must all have one)."""
        idx = torch.tensor([self._index[r.hook] for r in rows], device=self.weight.device)
        return self.translate_index(resid, idx)

    def translate_index(self, resid: Float[Tensor, "row ... d_model"], idx: Tensor) -> Float[Tensor, "row ... d_model"]:
        """``h + A h + b`` with translator ``idx[r]`` for the r-th leading slice."""
        w, b = self.weight[idx], self.bias[idx] * self.scale[idx, None]  # [row, d, d], [row, d]
        flat = resid.reshape(resid.shape[0], -1, resid.shape[-1])  # [row, n, d]
        out = flat + torch.baddbmm(b[:, None, :], flat, w.transpose(1, 2))
        return out.view(resid.shape)

    # --- files ----------------------------------------------------------------------------------------
    def save(self, directory: str | Path, extra: dict | None = None, *, force: bool = False) -> Path:
        """Write ``tuned_lens.safetensors`` + ``tuned_lens.json`` (+ mechscope's marker) into ``directory``.

        Written atomically through :func:`mechscope.io.write_artifact`: a previous tuned lens there is
        replaced, a folder mechscope did not create is refused (with ``force``, only the lens's files are
        added to it). Check the path before training with :func:`check_lens_dir`.
        """
        from mechscope.io import write_artifact

        tensors = {"weight": self.weight, "bias": self.bias, "scale": self.scale}
        meta = {
            "format": FORMAT, "model": self.model_name, "fingerprint": self.fingerprint, "d_model": self.d_model,
            "hooks": self.hooks, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **self.info, **(extra or {}),
        }  # fmt: skip
        directory = write_artifact(directory, {k: v.detach().float() for k, v in tensors.items()}, meta, kind=KIND,
                                   fingerprint=self.fingerprint or None, tensors_file=WEIGHTS_FILE,
                                   meta_file=CONFIG_FILE, force=force)  # fmt: skip
        self.info = {k: v for k, v in meta.items() if k not in ("format", "model", "fingerprint", "d_model", "hooks")}
        return directory


def check_lens_dir(directory: str | Path, force: bool = False) -> Path:
    """Refuse, before any training, an output path a tuned lens may not be written to (one line)."""
    from mechscope.io import check_output_dir

    return check_output_dir(directory, KIND, force=force)


def load_tuned_lens(path: str | Path, model: HookedModel | None = None) -> TunedLens:
    """Read a saved tuned lens (a directory, or its ``tuned_lens.json``); with ``model``, refuse another model's."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mechscope.io import MARKER_FILE, verify_artifact

    path = Path(path).expanduser()
    directory = path.parent if path.name == CONFIG_FILE else path
    cfg_path, w_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not cfg_path.is_file() or not w_path.is_file():
        hint = "train one with `mechscope lens train-tuned`" if model is None else \
            f"train one with `mechscope lens train-tuned --model {model.name}`"  # fmt: skip
        raise RunError(f"no tuned lens at {directory} ({CONFIG_FILE} + {WEIGHTS_FILE} expected): {hint}")
    try:
        if (directory / MARKER_FILE).exists():  # lenses saved before the marker existed are read unverified
            verify_artifact(directory, KIND, verify=True, fix="retrain it")
        meta = json.loads(cfg_path.read_text())
        tensors = load_file(str(w_path))
    except (ValueError, OSError, SafetensorError) as exc:
        raise RunError(f"the tuned lens at {directory} is unreadable ({type(exc).__name__}): retrain it") from None
    if not isinstance(meta, dict):
        raise RunError(f"{cfg_path} is not a mechscope tuned lens (not a JSON object)")
    if meta.get("format") != FORMAT:
        raise RunError(f"{cfg_path} is not a mechscope tuned lens (format {meta.get('format')!r})")
    try:
        hooks, d = [str(h) for h in meta["hooks"]], int(meta["d_model"])
    except (KeyError, TypeError, ValueError):
        raise RunError(f"{cfg_path} is corrupted (no valid hooks / d_model): retrain the tuned lens") from None
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if shapes != {"weight": (len(hooks), d, d), "bias": (len(hooks), d), "scale": (len(hooks),)}:
        raise RunError(f"the tuned lens at {directory} is corrupted (tensor shapes do not match its JSON): retrain it")
    info = {k: v for k, v in meta.items() if k not in ("format", "model", "fingerprint", "d_model", "hooks")}
    lens = TunedLens(hooks, d, model_name=meta.get("model", ""), fingerprint=meta.get("fingerprint", ""), info=info)
    with torch.no_grad():
        lens.weight.copy_(tensors["weight"])
        lens.bias.copy_(tensors["bias"])
        lens.scale.copy_(tensors["scale"])
    if model is not None:
        lens.check_model(model)
        lens = lens.to(model.device)
    return lens.requires_grad_(False)
