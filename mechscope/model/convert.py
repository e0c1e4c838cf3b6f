"""GGUF → safetensors conversion cache.

Loading a GGUF through transformers dequantises every tensor (~50 s on 2 cores for Gemma 3 270M). We
do that once and keep a float32 safetensors + tokenizer directory under ``$MECHSCOPE_HOME/models``
(default ``~/.cache/mechscope/models``); later loads read it in about a second.

The directory is built in a temporary sibling and renamed into place (:func:`mechscope.io.atomic_dir`),
so a killed conversion never leaves a half-written cache, and a folder mechscope did not write is never
replaced. ``mechscope.json`` (written last) records the source and, per file, its
size, modification time, a digest of sampled blocks and a full BLAKE2b digest; every load checks them
(see :func:`verify`), and a truncated or corrupted cache is rebuilt from the GGUF (nothing the user
made is touched).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

from mechscope.errors import CacheError
from mechscope.io import MARKER_FILE, atomic_dir, marker, read_marker, write_json

log = logging.getLogger("mechscope")

MANIFEST = MARKER_FILE
"""The cache's manifest is mechscope's artifact marker (:mod:`mechscope.io`), of kind :data:`KIND`."""
KIND = "model cache"
WEIGHTS = "model.safetensors"
_SAMPLES = 64
_BLOCK = 1 << 16


def home() -> Path:
    return Path(os.environ.get("MECHSCOPE_HOME", Path.home() / ".cache" / "mechscope")).expanduser()


def sampled_digest(path: Path) -> str:
    """Digest of the file's size, head, tail and 64 evenly spaced 64 KiB blocks (milliseconds for 1 GB)."""
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as f:
        offsets = {0, max(0, size - _BLOCK)} | {size * i // _SAMPLES for i in range(_SAMPLES)}
        for off in sorted(offsets):
            f.seek(off)
            h.update(f.read(_BLOCK))
    return h.hexdigest()


def full_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def file_record(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "digest": sampled_digest(path), "blake2b": full_digest(path)}


def verify(cache_dir: Path, full: bool = False) -> str | None:
    """None if ``cache_dir`` is a complete, intact cache; otherwise why it is not.

    Every load checks sizes and a sampled digest (milliseconds). A file whose modification time differs
    from the one recorded is hashed in full (about 1 s per GB) and, if intact, its new time recorded.
    ``full=True`` hashes every file in full whatever its time says (``mechscope check --full``).
    """
    manifest = cache_dir / MANIFEST
    if not manifest.is_file():
        return "no manifest (conversion never finished)"
    try:
        data = json.loads(manifest.read_text())
        files = data["files"]
        records = [(str(n), int(m["size"]), str(m["digest"]), m.get("mtime_ns"), m.get("blake2b")) for n, m in files.items()]
    except (ValueError, KeyError, TypeError, AttributeError, OSError, UnicodeDecodeError):
        return "manifest is unreadable"
    if WEIGHTS not in files:
        return f"manifest lists no {WEIGHTS}"
    touched = False
    for name, size, digest, mtime_ns, blake in records:
        path = cache_dir / name
        if not path.is_file():
            return f"{name} is missing"
        st = path.stat()
        if st.st_size != size:
            return f"{name} is truncated ({st.st_size} of {size} bytes)"
        if sampled_digest(path) != digest:
            return f"{name} is corrupted (checksum mismatch)"
        if full or st.st_mtime_ns != mtime_ns:
            if full_digest(path) != blake:
                return f"{name} is corrupted (checksum mismatch)"
            if st.st_mtime_ns != mtime_ns:
                files[name]["mtime_ns"], touched = st.st_mtime_ns, True
    if touched:
        try:
            write_json(manifest, data)
        except OSError:  # a read-only cache is still a valid one
            pass
    return None


# the files a conversion writes (transformers' save_pretrained of a model and its tokenizer, + the manifest)
_CONVERTED = re.compile(r"^(mechscope\.json|config\.json|generation_config\.json|model(-\d+-of-\d+)?\.safetensors"
                        r"|model\.safetensors\.index\.json|tokenizer.*|special_tokens_map\.json|added_tokens\.json"
                        r"|chat_template\.(json|jinja))$")  # fmt: skip


def _adopt(cache_dir: Path) -> None:
    """Let a broken cache folder be replaced, if it is one: mark it as ours when it holds only files a
    conversion writes (its manifest may be unreadable, or from before the artifact marker). A folder
    holding anything else is left alone, and the conversion is refused (one line)."""
    if read_marker(cache_dir) is not None or not cache_dir.is_dir():
        return
    names = sorted(p.name for p in cache_dir.iterdir() if ".tmp-" not in p.name)
    foreign = [n for n in names if not _CONVERTED.match(n)]
    if foreign:
        raise CacheError(f"the model cache folder {cache_dir} holds files mechscope did not write ({', '.join(foreign[:3])}): "
                         "move them, or set MECHSCOPE_HOME to another folder")  # fmt: skip
    try:
        old = json.loads((cache_dir / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        old = {}
    extra = {k: v for k, v in old.items() if k not in ("files", "format", "kind", "version", "fingerprint")} \
        if isinstance(old, dict) else {}  # fmt: skip
    write_json(cache_dir / MANIFEST, marker(KIND, {n: {} for n in names if n != MANIFEST}, **extra))


def convert_gguf(gguf_path: Path, cache_dir: Path, label: str) -> Path:
    """Dequantise ``gguf_path`` into ``cache_dir`` (atomically). Returns ``cache_dir``."""
    from filelock import FileLock
    from tqdm.auto import tqdm

    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir) + ".lock"):
        problem = verify(cache_dir) if cache_dir.exists() else "absent"
        if problem is None:  # another process finished it while we waited
            return cache_dir
        if cache_dir.exists():
            log.warning("mechscope: cache %s is unusable (%s); re-converting from %s", cache_dir, problem, gguf_path)
        if gguf_path.stat().st_size == 0:
            raise CacheError(f"{gguf_path} is empty, not a GGUF model: copy or download it again")
        _adopt(cache_dir)
        steps = tqdm(total=4, desc=f"mechscope: converting {label} GGUF → {cache_dir} (one time, ~1 min)",
                     unit="step", leave=True)  # fmt: skip
        try:
            with atomic_dir(cache_dir, KIND) as tmp:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                import torch

                try:
                    steps.set_postfix_str("reading tokenizer")
                    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
                    steps.update()
                    steps.set_postfix_str("dequantising weights")
                    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                                 dtype=torch.float32)  # fmt: skip
                except (ValueError, KeyError, TypeError, IndexError, RuntimeError, OSError, EOFError) as exc:
                    text = " ".join(str(exc).split())[:160] or type(exc).__name__
                    raise CacheError(f"could not read {gguf_path} as a GGUF model ({type(exc).__name__}: {text}): "
                                     "check the file, or copy or download it again") from None  # fmt: skip
                steps.update()
                steps.set_postfix_str("writing safetensors")
                # A GGUF-loaded model refuses save_pretrained although its weights are plain fp32 now.
                model.hf_quantizer = None
                if hasattr(model.config, "quantization_config"):
                    del model.config.quantization_config
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
                steps.update()
                files = {p.name: file_record(p) for p in sorted(tmp.iterdir())}
                write_json(tmp / MANIFEST, marker(
                    KIND, files, source=str(gguf_path), source_size=gguf_path.stat().st_size, label=label,
                    note="weights are the GGUF's Q4_K_M values dequantised to float32, not the original bf16 release",
                ))  # fmt: skip
            steps.update()
        except OSError as exc:
            raise CacheError(f"could not write the model cache at {cache_dir}: {exc.strerror or exc}") from None
        finally:
            steps.close()
    return cache_dir
