"""Gemma Scope's JumpReLU SAEs and transcoders (read only).

- **Gemma Scope** (Gemma 2; ``google/gemma-scope-*``): ``params.npz`` with ``W_enc`` ``[d_in, d_sae]``,
  ``W_dec`` ``[d_sae, d_out]``, ``b_enc``, ``b_dec``, ``threshold`` ``[d_sae]``. Nothing in the folder
  names the hook (the release and folder names do: ``layer_12/width_16k/average_l0_82`` of
  ``gemma-scope-2b-pt-res`` reads ``blocks.12.hook_resid_post``), so the caller passes ``hook=``.
- **Gemma Scope 2** (Gemma 3; ``google/gemma-scope-2-*``): ``params.safetensors`` with ``w_enc``,
  ``w_dec``, ``b_enc``, ``b_dec``, ``threshold`` and, for affine (skip) transcoders,
  ``affine_skip_connection`` ``[d_in, d_out]``; beside it ``config.json`` (``architecture: "jump_relu"``,
  ``hf_hook_point_in`` / ``hf_hook_point_out`` as Hugging Face module names, ``model_name``, ``width``,
  ``l0``, ``affine_connection``). The hooks map to mechscope's names
  (:func:`~mechscope.sae.formats.hook_from_hf`): ``model.layers.L.output`` → ``blocks.L.hook_resid_post``,
  ``…pre_feedforward_layernorm.output`` → ``blocks.L.ln2.hook_normalized``,
  ``…post_feedforward_layernorm.output`` → ``blocks.L.hook_mlp_out``; attention-output SAEs
  (``self_attn.o_proj.input``, all heads' ``hook_z`` flattened) have no mechscope hook.

Both compute, as the Gemma Scope tutorial and SAELens' loaders do (no ``b_dec`` subtracted from the input)::

    pre = x @ W_enc + b_enc;  f = relu(pre) * (pre > threshold);  recon = f @ W_dec + b_dec (+ x @ affine_skip_connection)

A mechscope SAE subtracts ``b_dec`` from its input, so SAEs are read with ``b_enc + b_dec @ W_enc`` (exact
in real arithmetic); transcoders need nothing. Cross-layer transcoders (3-D ``w_dec``) are refused.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mechscope.errors import ArtifactError, ConfigError
from mechscope.sae import formats
from mechscope.sae.config import SAEConfig

NPZ_FILE = "params.npz"
SAFETENSORS_FILE = "params.safetensors"
CONFIG_FILE = "config.json"
HOOK_HINT = "Gemma Scope's params.npz names no hook; its release and folder do, e.g. layer_12 of a -res release " \
    "reads blocks.12.hook_resid_post"  # fmt: skip
HOOK_HINT_2 = f"its {CONFIG_FILE} has no hf_hook_point_in that mechscope can map"
_KEYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


def read_npz(directory: Path, hook: str | None = None):
    """The Gemma Scope (v1) SAE in ``directory/params.npz`` (its hook comes from the caller)."""
    import numpy as np

    path = directory / NPZ_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {k: torch.from_numpy(np.asarray(data[k], dtype=np.float32)) for k in data.files}
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: the Gemma Scope SAE is incomplete") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{path} is corrupted ({str(exc).splitlines()[0][:80]}): download it again") from None
    t = _canonical(raw)
    scale = t.pop("scaling_factor", None)
    if scale is not None and not torch.allclose(scale, torch.ones_like(scale)):
        raise ArtifactError(f"{path} has a fine-tuning scaling_factor other than 1, which mechscope does not apply")
    return _build(t, path, {}, {"source_format": "gemmascope"})


def read_safetensors(directory: Path, hook: str | None = None):
    """The Gemma Scope 2 SAE or transcoder in ``directory`` (``params.safetensors`` + ``config.json``)."""
    path = directory / SAFETENSORS_FILE
    if not path.exists():
        found = sorted(directory.glob("*.safetensors"))
        if len(found) != 1:
            raise ArtifactError(f"{directory} holds no {SAFETENSORS_FILE} and {len(found)} other .safetensors files: "
                                "give the folder of one Gemma Scope 2 SAE")  # fmt: skip
        path = found[0]
    config = formats.read_json(directory / CONFIG_FILE, "Gemma Scope 2 SAE") if (directory / CONFIG_FILE).exists() else {}
    arch = config.get("architecture", "jump_relu")
    if arch != "jump_relu":
        raise ArtifactError(f"{directory / CONFIG_FILE} says architecture {arch!r}; Gemma Scope 2 SAEs are jump_relu")
    t = _canonical(formats.read_tensors(path, "Gemma Scope 2 SAE"))
    if "W_dec" in t and t["W_dec"].ndim == 3:
        raise ArtifactError(f"{path} is a cross-layer transcoder (3-D w_dec), which mechscope does not read")
    if config.get("affine_connection") and "W_skip" not in t:
        raise ArtifactError(f"{path} lacks affine_skip_connection although {CONFIG_FILE} says affine_connection")
    hf_in, hf_out = config.get("hf_hook_point_in"), config.get("hf_hook_point_out")
    info = {"source_format": "gemmascope2"}
    if config.get("model_name"):
        info["model"] = config["model_name"]
    if formats.hook_from_hf(hf_in):
        info["hook"] = formats.hook_from_hf(hf_in)
    transcoder = bool(hf_out and hf_out != hf_in) or config.get("type") in ("transcoder", "clt") or "W_skip" in t
    if transcoder and formats.hook_from_hf(hf_out):
        info["target"] = formats.hook_from_hf(hf_out)
    elif not transcoder and "hook" in info:
        info["target"] = info["hook"]
    return _build(t, path, {"transcoder": transcoder}, info)


def _canonical(raw: dict) -> dict:
    """Keys as mechscope names them (``w_enc`` → ``W_enc``, ``affine_skip_connection`` → ``W_skip``)."""
    out = {}
    for k, v in raw.items():
        key = "W_" + k[2:] if k.startswith("w_") else k
        out["W_skip" if key == "affine_skip_connection" else key] = v
    return out


def _build(t: dict, path: Path, kind: dict, info: dict):
    from mechscope.sae.artifact import from_weights

    missing = [k for k in _KEYS if k not in t]
    if missing:
        raise ArtifactError(f"{path} lacks {', '.join(missing)}: it is not a Gemma Scope JumpReLU SAE")
    if t["W_enc"].ndim != 2 or t["W_dec"].ndim != 2:
        raise ArtifactError(f"{path} has W_enc {tuple(t['W_enc'].shape)} and W_dec {tuple(t['W_dec'].shape)}: expected matrices")
    d_in, width = t["W_enc"].shape
    d_out = t["W_dec"].shape[1]
    transcoder = kind.get("transcoder", False) or d_out != d_in
    try:
        cfg = SAEConfig(arch="jumprelu", d_in=d_in, width=width, transcoder=transcoder, skip="W_skip" in t,
                        d_out=d_out if d_out != d_in else None)  # fmt: skip
    except ConfigError as exc:
        raise ArtifactError(f"the Gemma Scope SAE at {path} is inconsistent: {exc}") from None
    b_enc = t["b_enc"]
    if not transcoder:  # x @ W + b == (x - b_dec) @ W + (b + b_dec @ W)
        if t["b_dec"].shape != (d_in,) or b_enc.shape != (width,):
            raise ArtifactError(f"{path} has b_enc {tuple(b_enc.shape)} and b_dec {tuple(t['b_dec'].shape)}: "
                                f"expected ({width},) and ({d_in},)")  # fmt: skip
        b_enc = b_enc + t["b_dec"] @ t["W_enc"]
    tensors = {"W_enc": t["W_enc"], "b_enc": b_enc, "W_dec": t["W_dec"], "b_dec": t["b_dec"], "threshold": t["threshold"]}
    if "W_skip" in t:
        tensors["W_skip"] = t["W_skip"]
    return from_weights(cfg, tensors, info, where=f"at {path.parent}")
