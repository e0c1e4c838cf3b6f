"""EleutherAI sparsify 1.3's layout (``SparseCoder.save_to_disk`` / ``load_from_disk``): ``cfg.json`` + ``sae.safetensors``.

Tensors (one dtype): ``encoder.weight`` ``[num_latents, d_in]`` (an ``nn.Linear``), ``encoder.bias``,
``W_dec`` ``[num_latents, d_in]``, ``b_dec`` ``[d_in]``, and ``W_skip`` ``[d_in, d_in]`` when
``skip_connection``. sparsify computes::

    pre   = relu((x - b_dec) @ encoder.weight.T + encoder.bias)   # no b_dec subtraction when transcode
    top k of pre (values and indices)                            # activation "topk"
    recon = sum_j value_j * W_dec[index_j] + b_dec (+ x @ W_skip.T)

which is mechscope's TopK SAE (transcoder when ``transcode``) with ``W_enc = encoder.weight.T`` and
``W_skip = W_skip.T``. sparsify has only per-token TopK (and GroupMax, which mechscope does not read), no
thresholds, and outputs as wide as the input. ``num_latents`` 0 means ``d_in * expansion_factor``.

sparsify names an SAE by its folder, the hookpoint (a module name such as ``layers.6``); a trainer's
checkpoint holds one folder per hookpoint. Layer outputs map to ``blocks.{i}.hook_resid_post``
(:func:`~mechscope.sae.formats.hook_from_hf`); other hookpoints need ``hook=``. sparsify has no place
for mechscope's record, so :data:`~mechscope.sae.formats.INFO_FILE` is written beside its files.
"""

from __future__ import annotations

from pathlib import Path

from mechscope.errors import ArtifactError, ConfigError
from mechscope.sae import formats
from mechscope.sae.config import SAEConfig

WEIGHTS_FILE = "sae.safetensors"
CONFIG_FILE = "cfg.json"
HOOK_HINT = "sparsify names it by its folder, a module name mechscope could not map"


def sae_folders(directory: Path) -> list[Path]:
    """Sub-folders of ``directory`` holding a sparsify SAE (a trainer checkpoint: one per hookpoint)."""
    try:
        subs = sorted(p for p in directory.iterdir() if p.is_dir())
    except OSError:
        return []
    return [p for p in subs if (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file()]


def _resolve(directory: Path, hook: str | None) -> Path:
    if (directory / CONFIG_FILE).is_file() and (directory / WEIGHTS_FILE).is_file():
        return directory
    subs = sae_folders(directory)
    if not subs:
        raise ArtifactError(f"{directory} holds no sparsify SAE ({CONFIG_FILE} + {WEIGHTS_FILE}, or one folder per hookpoint)")
    if len(subs) == 1:
        return subs[0]
    names = [p.name for p in subs]
    chosen = [p for p in subs if hook is not None and hook in (p.name, formats.hook_from_hf(p.name))]
    if len(chosen) != 1:
        listed = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
        asked = f"--hook {hook} matches none of them" if hook else "choose one with --hook (mechscope's name, e.g. " \
            f"{formats.hook_from_hf(names[0]) or 'blocks.6.hook_resid_post'})"  # fmt: skip
        raise ArtifactError(f"{directory} holds {len(subs)} sparsify SAEs ({listed}): {asked}, or give its sub-folder")
    return chosen[0]


def read(directory: Path, hook: str | None = None):
    """The SAE in a sparsify folder, or in the one sub-folder of a checkpoint that ``hook`` selects."""
    from mechscope.sae.artifact import from_weights

    given, directory = directory, _resolve(directory, hook)
    what = "sparsify SAE"
    cfg = formats.read_json(directory / CONFIG_FILE, what)
    if cfg.get("activation", "topk") != "topk":
        raise ArtifactError(f"the sparsify SAE at {directory} uses activation {cfg.get('activation')!r}; "
                            "mechscope reads only topk")  # fmt: skip
    try:
        d_in = int(cfg["d_in"])
        width = int(cfg.get("num_latents") or 0) or d_in * int(cfg.get("expansion_factor", 32))
        k = int(cfg.get("k", 32))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{directory / CONFIG_FILE} lacks a usable d_in, num_latents or k ({exc})") from None
    transcode, skip = bool(cfg.get("transcode", False)), bool(cfg.get("skip_connection", False))
    if skip and not transcode:
        raise ArtifactError(f"the sparsify SAE at {directory} has a skip connection without transcode, "
                            "which mechscope's SAEs do not have")  # fmt: skip
    t = formats.read_tensors(directory / WEIGHTS_FILE, what)
    want = {"encoder.weight": (width, d_in), "encoder.bias": (width,), "W_dec": (width, d_in), "b_dec": (d_in,)}
    if skip:
        want["W_skip"] = (d_in, d_in)
    missing, extra = sorted(set(want) - set(t)), sorted(set(t) - set(want))
    if missing or extra:
        raise ArtifactError(f"{directory / WEIGHTS_FILE} does not match its {CONFIG_FILE}: "
                            + "; ".join(s for s in (f"lacks {', '.join(missing)}" if missing else "",
                                                    f"has unexpected {', '.join(extra)}" if extra else "") if s))  # fmt: skip
    for name, shape in want.items():
        if tuple(t[name].shape) != shape:
            raise ArtifactError(f"{directory / WEIGHTS_FILE} has {name} of shape {tuple(t[name].shape)}, "
                                f"its {CONFIG_FILE} implies {shape}")  # fmt: skip
    try:
        derived = SAEConfig(arch="topk", d_in=d_in, width=width, k=k, transcoder=transcode, skip=skip)
    except ConfigError as exc:
        raise ArtifactError(f"the sparsify SAE at {directory} is inconsistent: {exc}") from None
    rec = formats.read_record(directory)
    sae_cfg = formats.recorded_config(rec.get("sae"), derived, lambda a: a == "topk")
    tensors = {"W_enc": t["encoder.weight"].t(), "b_enc": t["encoder.bias"], "W_dec": t["W_dec"], "b_dec": t["b_dec"]}
    if skip:
        tensors["W_skip"] = t["W_skip"].t()
    info = dict(rec.get("info") or {})
    mapped = formats.hook_from_hf(directory.name)
    if mapped and not info.get("hook"):
        info["hook"] = mapped
        if not transcode:
            info["target"] = mapped
    if mapped or directory != given:
        info.setdefault("hookpoint", directory.name)
    info["source_format"] = "sparsify"
    return from_weights(sae_cfg, tensors, info, where=f"at {directory}")


def check_writable(cfg: SAEConfig) -> None:
    """Refuse, in one line, what sparsify's layout cannot express."""
    why = {
        "relu": "sparsify has no ReLU SAE (only TopK): use --to saelens (its standard architecture)",
        "jumprelu": "sparsify has no JumpReLU (it stores no thresholds): use --to saelens",
        "batchtopk": "sparsify stores no thresholds, and a BatchTopK SAE acts through its per-latent thresholds at "
                     "inference (per-token TopK would change its outputs): use --to saelens (as jumprelu)",
    }  # fmt: skip
    if cfg.arch in why:
        raise ConfigError(f"cannot write a {cfg.arch} SAE as sparsify: {why[cfg.arch]}")
    if cfg.transcoder and cfg.out_dim != cfg.d_in:
        raise ConfigError(f"cannot write this transcoder as sparsify: sparsify's outputs are as wide as its inputs "
                          f"({cfg.d_in}), this one's are {cfg.out_dim} wide; keep the mechscope layout")  # fmt: skip


def write(sae, directory, *, force: bool = False) -> Path:
    """Write ``sae`` (TopK) as sparsify's ``SparseCoder.save_to_disk`` does, plus mechscope's record."""
    from mechscope.sae.artifact import weights

    cfg = sae.cfg
    check_writable(cfg)
    w = weights(sae)
    tensors = {"encoder.weight": w["W_enc"].t().contiguous(), "encoder.bias": w["b_enc"], "W_dec": w["W_dec"],
               "b_dec": w["b_dec"]}  # fmt: skip
    if "W_skip" in w:
        tensors["W_skip"] = w["W_skip"].t().contiguous()  # sparsify: x @ W_skip.T
    out = {"activation": "topk", "expansion_factor": max(1, cfg.width // cfg.d_in), "normalize_decoder": cfg.unit_decoder,
           "num_latents": cfg.width, "k": cfg.k, "multi_topk": False, "skip_connection": cfg.skip,
           "transcode": cfg.transcoder, "d_in": cfg.d_in}  # fmt: skip
    record = {"format": formats.INFO_FORMAT, "sae": cfg.to_dict(), "info": formats.record_info(sae)}
    files = {WEIGHTS_FILE: formats.safetensors_writer(tensors), CONFIG_FILE: formats.json_text(out),
             formats.INFO_FILE: formats.json_text(record)}  # fmt: skip
    return formats.write_layout(directory, files, force=force)
