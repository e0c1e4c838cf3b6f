"""SAELens 6.x's layout (``SAE.save_model`` / ``SAE.load_from_disk``): ``cfg.json`` + ``sae_weights.safetensors``.

Tensors (cfg ``dtype``): ``W_enc`` ``[d_in, d_sae]``, ``b_enc``, ``W_dec`` ``[d_sae, d_out]``, ``b_dec``;
``threshold`` ``[d_sae]`` for jumprelu architectures (older files: ``log_threshold``); ``W_skip``
``[d_out, d_in]`` for skip transcoders (``x @ W_skip.T``). SAELens computes::

    s   = x - b_dec if apply_b_dec_to_input else x        # transcoders: always x
    pre = s @ W_enc + b_enc
    standard: f = relu(pre);   jumprelu: f = relu(pre) * (pre > threshold)
    topk:     pre *= |W_dec[i]| if rescale_acts_by_decoder_norm; f = relu of the k largest, 0 elsewhere
    recon = f' @ W_dec + b_dec                            # f' = f / |W_dec[i]| when rescaling

mechscope ↔ SAELens: relu ↔ standard, topk ↔ topk, jumprelu ↔ jumprelu, batchtopk → jumprelu (its
inference rule ``pre·(pre > θ)`` equals SAELens' for θ ≥ 0; SAELens saves its own BatchTopK SAEs the
same way); transcoders ↔ ``transcoder``, ``skip_transcoder``, ``jumprelu_transcoder``,
``jumprelu_skip_transcoder``. Read-time folds, exact in real arithmetic: decoder-norm rescaling into
``W_enc``/``b_enc``/``W_dec``; ``apply_b_dec_to_input: false`` (Gemma Scope-style SAEs) into
``b_enc += b_dec @ W_enc``. mechscope's ``info`` and config ride in ``metadata["mechscope"]``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mechscope.errors import ArtifactError, ConfigError
from mechscope.sae import formats
from mechscope.sae.config import SAEConfig

WEIGHTS_FILE = "sae_weights.safetensors"
CONFIG_FILE = "cfg.json"
LAYOUT_VERSION = "6.0.0"
"""``metadata.sae_lens_version`` written: the layout's version (SAELens applies pre-6.0 renames below it)."""
HOOK_HINT = "its cfg.json has no metadata.hook_name"

ARCHS = {
    "standard": ("relu", False, False),
    "topk": ("topk", False, False),
    "jumprelu": ("jumprelu", False, False),
    "transcoder": ("relu", True, False),
    "skip_transcoder": ("relu", True, True),
    "jumprelu_transcoder": ("jumprelu", True, False),
    "jumprelu_skip_transcoder": ("jumprelu", True, True),
}
"""SAELens architecture → (mechscope arch, transcoder, skip) for the architectures mechscope reads."""
_SAELENS_ARCH = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "jumprelu"}
_NO_NORMALIZATION = (None, False, "none")


def read(directory: Path, hook: str | None = None):
    """The SAE in a SAELens folder (``hook`` is applied by the caller)."""
    from mechscope.sae.artifact import from_weights

    what = "SAELens SAE"
    cfg = formats.read_json(directory / CONFIG_FILE, what)
    meta = {**cfg, **cfg["metadata"]} if isinstance(cfg.get("metadata"), dict) else cfg  # pre-6.0 files: flat
    arch = _architecture(cfg)
    if arch not in ARCHS:
        raise ArtifactError(f"the SAELens SAE at {directory} is architecture {arch!r}, which mechscope does not read "
                            f"(it reads {', '.join(ARCHS)})")  # fmt: skip
    norm = cfg.get("normalize_activations")
    if norm not in _NO_NORMALIZATION:
        raise ArtifactError(f"the SAELens SAE at {directory} normalizes its input (normalize_activations={norm!r}), "
                            "which mechscope cannot fold into the weights exactly: fold it in SAELens "
                            "(e.g. fold_activation_norm_scaling_factor) and save it again")  # fmt: skip
    if cfg.get("reshape_activations", "none") not in (None, "none"):
        raise ArtifactError(f"the SAELens SAE at {directory} reads attention's hook_z flattened over heads "
                            f"(reshape_activations={cfg['reshape_activations']!r}), which mechscope's hooks do not provide")  # fmt: skip
    kind, transcoder, skip = ARCHS[arch]
    t = formats.read_tensors(directory / WEIGHTS_FILE, what)
    _drop_unit_scaling(t, directory)
    if "log_threshold" in t and "threshold" not in t:
        t["threshold"] = t.pop("log_threshold").exp()
    want = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if kind == "jumprelu" else []) + (["W_skip"] if skip else [])
    missing = [k for k in want if k not in t]
    if missing:
        raise ArtifactError(f"{directory / WEIGHTS_FILE} lacks {', '.join(missing)}: it is not a SAELens {arch} SAE")
    d_in, d_sae = _shape(t["W_enc"], 2, directory, "W_enc")
    d_out = _shape(t["W_dec"], 2, directory, "W_dec")[1]
    apply_b_dec = bool(cfg.get("apply_b_dec_to_input", not transcoder))
    if transcoder and apply_b_dec:
        raise ArtifactError(f"the SAELens transcoder at {directory} sets apply_b_dec_to_input, which SAELens itself "
                            "refuses for transcoders: set it to false")  # fmt: skip
    if not transcoder and d_out != d_in:
        raise ArtifactError(f"the SAELens {arch} SAE at {directory} maps {d_in} to {d_out} dimensions: "
                            "an SAE reconstructs its input")  # fmt: skip
    k = cfg.get("k", 100) if kind == "topk" else 32  # SAELens' own default when a topk cfg lacks k
    try:
        derived = SAEConfig(arch=kind, d_in=d_in, width=d_sae, k=int(k), transcoder=transcoder, skip=skip,
                            d_out=d_out if transcoder and d_out != d_in else None)  # fmt: skip
    except ConfigError as exc:
        raise ArtifactError(f"the SAELens SAE at {directory} is inconsistent: {exc}") from None
    rec = meta.get(formats.INFO_KEY) if isinstance(meta.get(formats.INFO_KEY), dict) else {}
    sae_cfg = formats.recorded_config(rec.get("sae"), derived,
                                      lambda a: _SAELENS_ARCH.get(a) == _SAELENS_ARCH[kind])  # fmt: skip
    with torch.no_grad():
        W_enc, b_enc, W_dec = t["W_enc"], t["b_enc"], t["W_dec"]
        if kind == "topk" and cfg.get("rescale_acts_by_decoder_norm", False):
            n = W_dec.norm(dim=-1)  # SAELens: pre * |W_dec[i]| before top-k, f / |W_dec[i]| before decoding
            W_enc, b_enc, W_dec = W_enc * n, b_enc * n, W_dec / n[:, None]
        if not transcoder and not apply_b_dec:  # x @ W + b == (x - b_dec) @ W + (b + b_dec @ W)
            b_enc = b_enc + t["b_dec"] @ W_enc
    tensors = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": t["b_dec"]}
    if kind == "jumprelu":
        tensors["threshold"] = t["threshold"]
    if skip:
        tensors["W_skip"] = t["W_skip"].t()
    info = dict(rec.get("info") or {}) if isinstance(rec.get("info"), dict) else {}
    hook_name = formats.hook_from_hf(meta.get("hook_name") or meta.get("hook_point")) or meta.get("hook_name")
    if hook_name:
        info["hook"] = hook_name
    if meta.get("model_name") and not info.get("model"):
        info["model"] = meta["model_name"]
    if transcoder:
        out = meta.get("hook_name_out")
        if out:
            info["target"] = formats.hook_from_hf(out) or out
    elif info.get("hook"):
        info["target"] = info["hook"]
    info["source_format"] = "saelens"
    return from_weights(sae_cfg, tensors, info, where=f"at {directory}")


def _architecture(cfg: dict) -> str:
    arch = cfg.get("architecture")
    if arch:
        return str(arch)
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if (cfg.get("activation_fn") or cfg.get("activation_fn_str")) == "topk" and kwargs.get("k") is not None:
        cfg["k"] = kwargs["k"]
        return "topk"
    return "standard"  # SAELens' default for files without an architecture


def _drop_unit_scaling(t: dict, directory: Path) -> None:
    for key in ("scaling_factor", "finetuning_scaling_factor"):
        if key in t:
            if not torch.allclose(t[key], torch.ones_like(t[key])):
                raise ArtifactError(f"the SAELens SAE at {directory} has a fine-tuning {key} mechscope does not apply")
            del t[key]


def _shape(t, ndim: int, directory: Path, name: str) -> tuple[int, ...]:
    if t.ndim != ndim:
        raise ArtifactError(f"{directory / WEIGHTS_FILE} has {name} of shape {tuple(t.shape)}: expected {ndim} dimensions")
    return tuple(t.shape)


def architecture_for(cfg: SAEConfig) -> str:
    """The SAELens architecture that computes what a mechscope SAE of ``cfg`` computes (or a one-line refusal)."""
    if cfg.transcoder:
        if cfg.arch == "topk":
            raise ConfigError("SAELens has no TopK transcoder (its transcoders are relu or jumprelu): keep the mechscope "
                              "layout, or --to sparsify when input and output widths are equal")  # fmt: skip
        base = "transcoder" if cfg.arch == "relu" else "jumprelu_transcoder"
        return base.replace("transcoder", "skip_transcoder") if cfg.skip else base
    return _SAELENS_ARCH[cfg.arch]


def write(sae, directory, *, force: bool = False) -> Path:
    """Write ``sae`` as SAELens' ``SAE.save_model`` does (float32); returns the folder."""
    from mechscope.sae.artifact import weights

    cfg = sae.cfg
    arch = architecture_for(cfg)
    formats.check_threshold(sae, "SAELens")
    w = weights(sae)
    tensors = {"W_enc": w["W_enc"], "b_enc": w["b_enc"], "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
    if "threshold" in w:
        tensors["threshold"] = w["threshold"]
    if "W_skip" in w:
        tensors["W_skip"] = w["W_skip"].t().contiguous()  # SAELens: [d_out, d_in], x @ W_skip.T
    info = formats.record_info(sae)
    metadata = {"sae_lens_version": LAYOUT_VERSION, "sae_lens_training_version": None,
                "model_name": info.get("model"), "hook_name": sae.hook}  # fmt: skip
    if cfg.transcoder:
        metadata["hook_name_out"] = sae.target
    metadata[formats.INFO_KEY] = {"sae": cfg.to_dict(), "info": info}
    out = {"d_in": cfg.d_in, "d_sae": cfg.width, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": not cfg.transcoder, "normalize_activations": "none",
           "reshape_activations": "none", "metadata": metadata}  # fmt: skip
    if cfg.transcoder:
        out["d_out"] = cfg.out_dim
    if arch == "topk":
        out["k"] = cfg.k
        out["rescale_acts_by_decoder_norm"] = False
    out["architecture"] = arch
    files = {WEIGHTS_FILE: formats.safetensors_writer(tensors), CONFIG_FILE: formats.json_text(out)}
    return formats.write_layout(directory, files, force=force)
