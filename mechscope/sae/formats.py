"""SAEs in other tools' layouts: read SAELens, EleutherAI sparsify and Gemma Scope; write SAELens and sparsify.

    >>> from mechscope.sae import formats
    >>> sae = formats.load_foreign("gemma-scope/layer_6", "gemmascope", hook="blocks.6.hook_resid_post")  # doctest: +SKIP
    >>> formats.save_as(sae, "out/l6-saelens", "saelens")                                                 # doctest: +SKIP
    >>> formats.convert("out/l6-saelens", "out/l6", "mechscope")                                          # doctest: +SKIP

One module per layout (:mod:`~mechscope.sae.formats_saelens`, :mod:`~mechscope.sae.formats_sparsify`,
:mod:`~mechscope.sae.formats_gemmascope`); this one dispatches, maps Hugging Face module names to
mechscope's hook names (:func:`hook_from_hf`) and writes layout folders safely (:func:`write_layout`).
``mechscope.sae.load`` calls :func:`load_foreign` for every layout but mechscope's own.

Every reader returns an SAE computing what the layout's own loader computes (docs/sae-formats.md gives
each layout's math and the measured differences against SAELens and sparsify themselves). Where a
layout records no mechscope model fingerprint, the SAE carries none: ``mechscope.sae.load(dir, model)``
still checks hook names and widths. Writers put mechscope's ``info`` (model, fingerprint, hook, target)
where the layout allows it (SAELens: ``cfg.json`` metadata; sparsify: a :data:`INFO_FILE` beside its
files), so a converted SAE still refuses another model after a round trip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from mechscope.errors import ArtifactError, ConfigError
from mechscope.io import FileSource, write_source as _write_source

READABLE = ("mechscope", "saelens", "sparsify", "gemmascope", "gemmascope2")
"""Layouts :func:`mechscope.sae.load` reads (found by :func:`mechscope.sae.artifact.detect_format`)."""
WRITABLE = ("mechscope", "saelens", "sparsify")
"""Layouts :func:`save_as` writes."""
INFO_FILE = "mechscope_info.json"
"""mechscope's record beside a layout that has no place for it (sparsify): ``{"format", "sae", "info"}``."""
INFO_FORMAT = "mechscope-sae-info/1"
INFO_KEY = "mechscope"
"""Key of mechscope's record inside a layout's own metadata (SAELens ``cfg.json`` ``metadata``)."""

_PREFIX = r"(?:model\.language_model\.|language_model\.model\.|language_model\.|model\.|gpt_neox\.|transformer\.)?"
_HF_HOOKS = (
    (re.compile(_PREFIX + r"(?:layers|h)\.(\d+)(?:\.output)?"), "blocks.{}.hook_resid_post"),
    (re.compile(_PREFIX + r"layers\.(\d+)\.pre_feedforward_layernorm(?:\.output)?"), "blocks.{}.ln2.hook_normalized"),
    (re.compile(_PREFIX + r"layers\.(\d+)\.post_feedforward_layernorm(?:\.output)?"), "blocks.{}.hook_mlp_out"),
)


def hook_from_hf(name: str | None) -> str | None:
    """mechscope's hook name for a Hugging Face module name, or None when there is no exact equivalent.

    ``model.layers.6`` / ``layers.6`` / ``model.layers.6.output`` (a decoder layer's output) →
    ``blocks.6.hook_resid_post``; Gemma's ``layers.6.pre_feedforward_layernorm`` →
    ``blocks.6.ln2.hook_normalized`` and ``layers.6.post_feedforward_layernorm`` →
    ``blocks.6.hook_mlp_out``. Names already in mechscope's (TransformerLens') style pass through.
    Attention's ``o_proj.input`` (all heads' ``hook_z`` flattened) has no mechscope hook: None.
    """
    if not name:
        return None
    if name.startswith("blocks.") or name in ("hook_embed", "ln_final.hook_normalized"):
        return name
    for pattern, template in _HF_HOOKS:
        m = pattern.fullmatch(name)
        if m:
            return template.format(m.group(1))
    return None


# ------------------------------------------------------------------------------------------- reading
def load_foreign(directory: str | os.PathLike, fmt: str, *, model=None, hook: str | None = None):
    """Read the SAE in ``directory``, stored in layout ``fmt`` (``saelens``, ``sparsify``, ``gemmascope``,
    ``gemmascope2``); ``hook`` names the hook it reads (mechscope's names) where the layout does not, and
    selects the SAE of a sparsify checkpoint folder holding several. With ``model``, an SAE whose hook
    (or, for a transcoder, output hook) is still unknown is refused in one line saying what to pass.
    """
    from mechscope.sae import formats_gemmascope, formats_saelens, formats_sparsify

    readers: dict[str, tuple[Callable, str]] = {
        "saelens": (formats_saelens.read, formats_saelens.HOOK_HINT),
        "sparsify": (formats_sparsify.read, formats_sparsify.HOOK_HINT),
        "gemmascope": (formats_gemmascope.read_npz, formats_gemmascope.HOOK_HINT),
        "gemmascope2": (formats_gemmascope.read_safetensors, formats_gemmascope.HOOK_HINT_2),
    }
    if fmt not in readers:
        raise ArtifactError(f"unknown SAE layout {fmt!r}: mechscope reads {', '.join(READABLE)}")
    directory = Path(directory).expanduser()
    read, hint = readers[fmt]
    sae = read(directory, hook=hook)
    if hook is not None:
        sae.info["hook"] = hook
        if not sae.cfg.transcoder:
            sae.info["target"] = hook
    if model is not None:
        if not sae.info.get("hook"):
            raise ArtifactError(f"the SAE at {directory} does not record which hook it reads ({hint}): pass --hook "
                                "(hook= in Python) with mechscope's name of it")  # fmt: skip
        if sae.cfg.transcoder and not sae.info.get("target"):
            raise ArtifactError(f"the transcoder at {directory} does not record which hook it reconstructs: "
                                f"{_target_hint(fmt)}")  # fmt: skip
    return sae


def _target_hint(fmt: str) -> str:
    """How to record a transcoder's output hook in layout ``fmt``."""
    if fmt == "saelens":
        return 'add "hook_name_out": "<hook>" to the metadata of its cfg.json'
    if fmt == "sparsify":
        return f'write {INFO_FILE} beside it with {{"info": {{"target": "<hook>"}}}}'
    if fmt == "gemmascope2":
        return 'add "hf_hook_point_out" to its config.json'
    return "Gemma Scope's params.npz names none, so mechscope cannot use it on a model"


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; a missing or unreadable file is one line naming it."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: the {what} is incomplete") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is unreadable ({str(exc).splitlines()[0][:80]}): the {what} is corrupted") from None
    if not isinstance(obj, dict):
        raise ArtifactError(f"{path} is not a JSON object: the {what} is corrupted")
    return obj


def read_tensors(path: Path, what: str) -> dict:
    """All tensors of a safetensors file as float32 (layouts store float32, bfloat16 or float16)."""
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: the {what} is incomplete") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is corrupted ({str(exc).splitlines()[0][:80]}): the {what} cannot be read") from None
    return {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in tensors.items()}


def read_record(directory: Path) -> dict:
    """mechscope's :data:`INFO_FILE` in ``directory`` (``{}`` when absent)."""
    path = directory / INFO_FILE
    if not path.exists():
        return {}
    rec = read_json(path, "mechscope record")
    if not isinstance(rec.get("info", {}), dict) or not isinstance(rec.get("sae", {}), dict):
        raise ArtifactError(f"{path} is not a mechscope record (its info and sae must be objects): fix or delete it")
    return rec


def recorded_config(rec: Mapping, derived, arch_ok: Callable[[str], bool]):
    """The SAEConfig recorded by mechscope when it agrees with what the layout itself says (same sizes and
    kind, an architecture the layout's one can stand for); else ``derived``. Restores e.g. a BatchTopK
    SAE's ``k`` and architecture after a trip through SAELens' jumprelu."""
    from mechscope.sae.config import SAEConfig

    if not isinstance(rec, Mapping) or not rec:
        return derived
    try:
        cfg = SAEConfig.from_dict(dict(rec))
    except (ConfigError, TypeError, ValueError):
        return derived
    same = (cfg.d_in, cfg.width, cfg.out_dim, cfg.transcoder, cfg.skip) == \
        (derived.d_in, derived.width, derived.out_dim, derived.transcoder, derived.skip)  # fmt: skip
    if not same or not arch_ok(cfg.arch) or (cfg.arch == derived.arch == "topk" and cfg.k != derived.k):
        return derived
    return cfg


# ------------------------------------------------------------------------------------------- writing
def save_as(sae, directory: str | os.PathLike, fmt: str, *, force: bool = False) -> Path:
    """Write ``sae`` in layout ``fmt`` (``mechscope``, ``saelens`` or ``sparsify``); returns the folder.

    What a layout cannot express is refused in one line before anything is written (sparsify holds only
    TopK SAEs; SAELens has no TopK transcoder; a BatchTopK SAE becomes SAELens' jumprelu only with
    thresholds ≥ 0).
    """
    from mechscope.sae import formats_saelens, formats_sparsify
    from mechscope.sae.artifact import save

    if fmt == "mechscope":
        return save(sae, directory, force=force)
    writers = {"saelens": formats_saelens.write, "sparsify": formats_sparsify.write}
    if fmt not in writers:
        raise ConfigError(f"cannot write SAEs as {fmt!r}: choose one of {', '.join(WRITABLE)}")
    return writers[fmt](raw(sae), directory, force=force)


def raw(sae):
    """``sae`` for raw activations (training-time input scaling folded in, as mechscope's own layout saves)."""
    if sae.info.get("scale_in", 1.0) != 1.0 or sae.info.get("scale_out", 1.0) != 1.0:
        from mechscope.sae.base import folded

        return folded(sae, sae.info["scale_in"], sae.info["scale_out"])
    return sae


def record_info(sae) -> dict:
    """mechscope's ``info`` of ``sae`` as plain JSON (no scales; non-finite floats as null)."""
    from mechscope.io import finite_json

    return finite_json({k: v for k, v in sae.info.items() if k not in ("scale_in", "scale_out")})


def check_threshold(sae, layout: str) -> None:
    """Refuse a BatchTopK SAE with a negative threshold (``pre·(pre>θ)`` ≠ ``relu(pre)·(pre>θ)`` then)."""
    thr = getattr(sae, "threshold", None)
    if sae.cfg.arch == "batchtopk" and thr is not None and bool((thr < 0).any()):
        n = int((thr < 0).sum())
        raise ConfigError(f"{layout}'s jumprelu computes relu(pre)·(pre > threshold), which equals this BatchTopK SAE's "
                          f"pre·(pre > threshold) only for thresholds ≥ 0, and {n} of its thresholds are negative")  # fmt: skip


def write_layout(directory: str | os.PathLike, files: Mapping[str, FileSource], *, force: bool = False) -> Path:
    """Write a foreign layout's files into ``directory`` (no mechscope marker: the layout's own loaders
    read it, and :func:`~mechscope.sae.artifact.detect_format` must not take it for mechscope's).

    A new or empty folder is assembled under a temporary sibling name and renamed into place. A folder
    holding anything is refused (one line) unless ``force``; then the files are added one by one, each
    written atomically, and a file already there is never replaced. Returns the folder.
    """
    from mechscope.errors import OutputPathError
    from mechscope.io import atomic_path, check_output_dir, read_marker

    target = Path(directory).expanduser()
    if target.is_dir() and read_marker(target) is not None:
        raise OutputPathError(f"{target} holds a mechscope artifact: choose a new folder for another layout")
    resolved = check_output_dir(target, "sae", force=force)
    if resolved.is_dir() and any(resolved.iterdir()):
        clash = sorted(n for n in files if (resolved / n).exists())
        if clash:
            raise OutputPathError(f"{target} already holds {', '.join(clash)}: choose a new folder (mechscope never "
                                  "replaces files it did not write)")  # fmt: skip
        for name, source in files.items():
            with atomic_path(resolved / name) as tmp:
                _write_source(tmp, source)
        return resolved
    resolved.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{resolved.name}.tmp-", dir=resolved.parent))
    try:
        for name, source in files.items():
            _write_source(tmp / name, source)
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, resolved)  # onto a missing or empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return resolved


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_text(obj) -> str:
    """Strict JSON (non-finite floats as null), as the layouts' loaders read it."""
    from mechscope.io import finite_json

    return json.dumps(finite_json(obj), indent=1, allow_nan=False) + "\n"


def safetensors_writer(tensors: Mapping) -> Callable[[Path], None]:
    """A writer of a plain safetensors file (no metadata, as the peers write theirs)."""
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return lambda p: save_file(flat, str(p))


# ---------------------------------------------------------------------------------------- converting
def convert(source: str | os.PathLike, out: str | os.PathLike, to: str, *, hook: str | None = None,
            force: bool = False):  # fmt: skip
    """Read the SAE in ``source`` (any readable layout) and write it to ``out`` in layout ``to``.

    Returns ``(sae, source_layout, out_path)``. ``hook`` names the input hook where the source does not.
    """
    from mechscope.io import check_output_dir
    from mechscope.sae.artifact import detect_format, load

    if to not in WRITABLE:
        raise ConfigError(f"cannot write SAEs as {to!r}: choose one of {', '.join(WRITABLE)}")
    src = Path(source).expanduser()
    if not src.is_dir():
        raise ArtifactError(f"no SAE at {src}: give a folder holding one")
    check_output_dir(out, "sae", force=force)
    fmt = detect_format(src)
    sae = load(src, hook=hook)
    return sae, fmt, save_as(sae, out, to, force=force)


__all__ = ["INFO_FILE", "READABLE", "WRITABLE", "convert", "hook_from_hf", "load_foreign", "save_as"]
