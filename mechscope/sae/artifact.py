"""Saving and loading SAEs in mechscope's own layout, and finding the right reader for other layouts.

mechscope layout (a directory, written atomically through :mod:`mechscope.io`):

- ``sae.safetensors`` (:data:`WEIGHTS_FILE`): ``W_enc`` ``[d_in, d_sae]``, ``b_enc``, ``W_dec``
  ``[d_sae, d_out]``, ``b_dec``, and ``W_skip`` / ``threshold`` where the architecture has them;
- ``config.json`` (:data:`CONFIG_FILE`): ``{"sae": SAEConfig, "info": {...}}``; ``info`` carries the
  model name and fingerprint, ``hook``, ``target``, ``positions`` (``"all but BOS"``) and training
  results when trained here;
- ``mechscope.json``: the artifact marker (kind ``sae``, fingerprint, checksums).

Weights are always saved for raw activations (training-time input scaling folded in, see
:func:`mechscope.sae.base.folded`). :func:`load` also reads the SAELens and sparsify layouts and Gemma
Scope's ``params.npz`` (:mod:`mechscope.sae.formats`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from mechscope.errors import ArtifactError
from mechscope.sae.base import SAE
from mechscope.sae.config import SAEConfig

KIND = "sae"
WEIGHTS_FILE = "sae.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


def sae_class(arch: str) -> type[SAE]:
    from mechscope.sae.batchtopk import BatchTopKSAE
    from mechscope.sae.jumprelu import JumpReLUSAE
    from mechscope.sae.relu import ReLUSAE
    from mechscope.sae.topk import TopKSAE

    return {"relu": ReLUSAE, "topk": TopKSAE, "batchtopk": BatchTopKSAE, "jumprelu": JumpReLUSAE}[arch]


def build(cfg: SAEConfig, info: dict | None = None) -> SAE:
    """An SAE of ``cfg.arch`` with zero weights (call ``init_weights`` or load a state)."""
    return sae_class(cfg.arch)(cfg, info)


def weights(sae: SAE) -> dict[str, Tensor]:
    """The tensors of the mechscope layout (CPU, contiguous, float32)."""
    out = {"W_enc": sae.W_enc, "b_enc": sae.b_enc, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
    if sae.W_skip is not None:
        out["W_skip"] = sae.W_skip
    thr = getattr(sae, "threshold", None)
    if isinstance(thr, Tensor) and sae.cfg.arch in ("jumprelu", "batchtopk"):
        out["threshold"] = thr
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in out.items()}


def from_weights(cfg: SAEConfig, tensors: dict[str, Tensor], info: dict | None = None, where: str = "") -> SAE:
    """Build an SAE from mechscope-layout tensors, checking names and shapes (one-line errors)."""
    sae = build(cfg, info)
    want = weights(sae)
    missing = sorted(set(want) - set(tensors))
    if missing:
        raise ArtifactError(f"the SAE {where} lacks {', '.join(missing)}")
    for k, v in want.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ArtifactError(f"the SAE {where} has {k} of shape {tuple(tensors[k].shape)}, its config implies {tuple(v.shape)}")
        if not torch.isfinite(tensors[k]).all():
            raise ArtifactError(f"the SAE {where} has non-finite values in {k}: it is corrupted or diverged; retrain it")
    with torch.no_grad():
        for k in ("W_enc", "b_enc", "W_dec", "b_dec", "W_skip"):
            if k in want:
                getattr(sae, k).copy_(tensors[k])
        if "threshold" in want:
            if cfg.arch == "jumprelu":
                sae.log_threshold.copy_(tensors["threshold"].clamp_min(1e-30).log())
            else:
                sae.threshold.copy_(tensors["threshold"])
    return sae


def save(sae: SAE, directory: str | Path, *, force: bool = False) -> Path:
    """Write ``sae`` (raw-activation weights) in the mechscope layout; returns the directory."""
    from mechscope.io import dumps, write_artifact

    if sae.info.get("scale_in", 1.0) != 1.0 or sae.info.get("scale_out", 1.0) != 1.0:
        from mechscope.sae.base import folded

        sae = folded(sae, sae.info["scale_in"], sae.info["scale_out"])
    info = {k: v for k, v in sae.info.items() if k not in ("scale_in", "scale_out")}
    config = {"format": FORMAT_VERSION, "sae": sae.cfg.to_dict(), "info": info}
    return write_artifact(directory, weights(sae), None, kind=KIND, fingerprint=info.get("fingerprint"),
                          tensors_file=WEIGHTS_FILE, files={CONFIG_FILE: dumps(config) + "\n"}, force=force)  # fmt: skip


def _fix(directory: Path) -> str:
    return "retrain it or point at another SAE folder"


def load_native(directory: str | Path, fingerprint: str | None = None) -> SAE:
    from mechscope.io import read_artifact

    directory = Path(directory).expanduser()
    tensors, _ = read_artifact(directory, KIND, fingerprint, tensors_file=WEIGHTS_FILE, meta_file=CONFIG_FILE,
                               fix=_fix(directory))  # fmt: skip
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        cfg = SAEConfig.from_dict(config["sae"])
        info = dict(config.get("info") or {})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"the SAE at {directory} has an unreadable {CONFIG_FILE} ({exc}): {_fix(directory)}") from None
    return from_weights(cfg, tensors, info, where=f"at {directory}")


def detect_format(directory: Path) -> str:
    """``mechscope``, ``saelens``, ``sparsify``, ``gemmascope`` or ``gemmascope2`` (by the files present; a
    folder whose sub-folders hold sparsify SAEs, as sparsify's trainer writes, is ``sparsify``)."""
    from mechscope.io import MARKER_FILE

    if (directory / MARKER_FILE).exists():
        return "mechscope"
    if (directory / "params.npz").exists():
        return "gemmascope"
    if (directory / "sae_weights.safetensors").exists():
        return "saelens"
    if (directory / "sae.safetensors").exists() and (directory / "cfg.json").exists():
        return "sparsify"
    if (directory / "params.safetensors").exists():
        return "gemmascope2"
    from mechscope.sae.formats_sparsify import sae_folders

    if sae_folders(directory):  # a sparsify trainer checkpoint: one folder per hookpoint
        return "sparsify"
    if any(directory.glob("*.safetensors")):
        return "gemmascope2"
    raise ArtifactError(f"{directory} holds no SAE mechscope can read (expected mechscope.json, sae_weights.safetensors, "
                        "cfg.json + sae.safetensors, params.npz or params.safetensors)")  # fmt: skip


def load(directory: str | Path, model=None, *, hook: str | None = None) -> SAE:
    """Load an SAE from a directory in any supported layout; with ``model``, check it belongs to it.

    An SAE recorded for another model fingerprint is refused; one whose hook the model lacks, or whose
    width differs from the hook's, is refused too (one line each). ``hook`` names the hook for layouts
    that do not record it in mechscope's naming (Gemma Scope).
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise ArtifactError(f"no SAE at {directory}: give the folder that `mechscope sae train` wrote")
    fmt = detect_format(directory)
    fingerprint = getattr(model, "fingerprint", None)
    if fmt == "mechscope":
        sae = load_native(directory, fingerprint)
    else:
        from mechscope.sae import formats

        sae = formats.load_foreign(directory, fmt, model=model, hook=hook)
    if hook is not None:
        sae.info["hook"] = hook
        sae.info.setdefault("target", hook)
    if model is not None:
        check_for_model(sae, model, where=str(directory))
    sae.eval().requires_grad_(False)
    return sae


def check_for_model(sae: SAE, model, where: str = "") -> None:
    """One-line errors when ``sae`` does not fit ``model`` (fingerprint, hook names, widths)."""
    from mechscope.errors import HookNameError, OutOfRangeError

    have = sae.info.get("fingerprint")
    if have and model.fingerprint and have != model.fingerprint:
        raise ArtifactError(f"the SAE {where} was trained on another model (fingerprint {have}; "
                            f"{model.name} is {model.fingerprint}): load the model it was made for")  # fmt: skip
    for role, name, width in (("input", sae.hook, sae.cfg.d_in), ("target", sae.target, sae.cfg.out_dim)):
        if name is None:
            raise ArtifactError(f"the SAE {where} does not say which hook it reads: pass --hook")
        try:
            spec = model.spec(name)
        except (HookNameError, OutOfRangeError) as exc:
            raise ArtifactError(f"the SAE {where} reads {name}, which {model.name} does not have ({exc})") from None
        d = model.hook_shapes()[spec.name][-1]
        if d != width:
            raise ArtifactError(f"the SAE {where} expects {width}-wide {role} activations but {name} of "
                                f"{model.name} is {d} wide: it belongs to another model")  # fmt: skip
