"""Atomic writes and artifact directories: the one place mechscope writes files.

Three layers, each built on the one before:

- :func:`atomic_write` / :func:`atomic_path`: one file, written under a temporary name in the same
  folder, flushed to disk and renamed into place with ``os.replace``. A failing writer leaves the old
  file untouched and no temporary behind.
- :func:`write_artifact` / :func:`read_artifact`: an *artifact directory* (a lens, a run, a store, an
  SAE, a vector) holding safetensors + JSON files and a marker, :data:`MARKER_FILE`, which records the
  format (``kind`` + ``version``), the model fingerprint and every file's size and SHA-256. The
  directory is assembled under a temporary sibling name and renamed into place.
- :func:`check_output_dir` / :func:`check_output_file`: validate an output path *before* the work
  starts, with the same rules the writers apply.

The rule that protects the user's files: **a writer never deletes or replaces a path it did not
create.** An existing directory is replaced only when it carries mechscope's marker of the same kind
and holds nothing the marker does not list; an empty directory may be used. Anything else is refused
with one line, unless ``force=True`` (the CLI's ``--force``), and even then only the artifact's own
files are written into it; the user's files stay. Never pickle: tensors go to safetensors, the rest
to JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mechscope.errors import ArtifactError, OutputPathError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

MARKER_FILE = "mechscope.json"
"""The marker of an artifact directory (format, kind, version, fingerprint, files with checksums)."""
MARKER_FORMAT = "mechscope-artifact/1"
TENSORS_FILE = "tensors.safetensors"
META_FILE = "meta.json"
_TMP_TAG = ".tmp-"


# ----------------------------------------------------------------------------------------- single files
def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is flushed and renamed onto ``path``.

    For writers that want a file name (``save_file(t, tmp)``, PIL, matplotlib). The temporary keeps
    ``path``'s suffix unless ``suffix`` is given (some writers choose the format from it). On error the
    temporary is removed and ``path`` is left as it was. The parent folder is created if missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}{_TMP_TAG}", suffix=path.suffix if suffix is None else suffix,
                                dir=path.parent)  # fmt: skip
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result gets the mode a plain open() gives
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; returns ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return path


def finite_json(obj: Any, found: list[str] | None = None, where: str = "") -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None, so it dumps as strict JSON.

    With a list ``found``, the place of each replaced value is appended to it (``rows[3].kl``).
    Floats of other types (numpy scalars) become Python floats.
    """
    if isinstance(obj, float) or (isinstance(obj, numbers.Real) and not isinstance(obj, (int, bool))):
        value = float(obj)
        if math.isfinite(value):
            return value
        if found is not None:
            found.append(where or "$")
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v, found, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v, found, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def dumps(obj: Any, *, indent: int | None = 1) -> str:
    """Strict JSON text (non-finite floats become ``null``, see :func:`finite_json`)."""
    return json.dumps(finite_json(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``obj`` as strict JSON atomically (non-finite floats become ``null``)."""
    return atomic_write(path, dumps(obj, indent=indent) + "\n")


DIGEST_KEY = "mechscope_sha256"
"""Metadata key of a safetensors file written by :func:`write_safetensors`: the SHA-256 of its tensors."""


def tensor_digest(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes, in name order (safetensors itself checks no data)."""
    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write tensors (moved to the CPU, made contiguous) to a safetensors file atomically, with their
    SHA-256 in the metadata so :func:`read_safetensors` notices a flipped byte."""
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={**(metadata or {}), DIGEST_KEY: tensor_digest(flat)})
    return path


def read_safetensors(path: str | os.PathLike, *, fix: str = "delete it and rerun") -> dict[str, Tensor]:
    """Tensors of a safetensors file; a missing, unreadable or (when it carries a digest) altered file
    raises :class:`ArtifactError` in one line ending with ``fix``."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: {fix}") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is corrupted ({str(exc).splitlines()[0][:80]}): {fix}") from None
    want = meta.get(DIGEST_KEY)
    if want is not None and tensor_digest(tensors) != want:
        raise ArtifactError(f"{path} is corrupted (its tensors do not match their checksum): {fix}")
    return tensors


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------ artifact markers
def read_marker(directory: str | os.PathLike) -> dict | None:
    """The marker of ``directory`` if it has a readable one, else None."""
    path = Path(directory) / MARKER_FILE
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT or not isinstance(marker.get("files"), dict):
        return None
    return marker


def _is_temporary(name: str) -> bool:
    return _TMP_TAG in name


def _foreign_entries(directory: Path, marker: dict | None) -> list[str]:
    """Top-level entries of ``directory`` that its marker does not list (the user's), sorted. A folder
    is listed when a file under it is (``seed_0/checkpoints/epoch_1.safetensors`` lists ``seed_0``)."""
    ours = {str(n).split("/", 1)[0] for n in marker["files"]} | {MARKER_FILE} if marker else set()
    return sorted(p.name for p in directory.iterdir() if p.name not in ours and not _is_temporary(p.name))


def check_output_dir(path: str | os.PathLike, kind: str, *, force: bool = False) -> Path:
    """Check, before any work, that an artifact of ``kind`` may be written at ``path``; returns it resolved.

    Allowed: a path that does not exist (its parents are created later), an empty directory, a directory
    carrying mechscope's marker of the same ``kind`` and nothing else. With ``force``, also a directory
    holding other files (they are kept; only the artifact's files are written). Refused with one line:
    a file, another kind of artifact, a user's folder without ``force``, an unwritable location.
    """
    path = Path(path).expanduser()
    resolved = path.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or resolved in Path.cwd().resolve().parents \
            or resolved == Path.cwd().resolve():  # fmt: skip
        raise OutputPathError(f"refusing to write a {kind} into {path} (the root, home, current or a parent folder): "
                              "choose a new folder")  # fmt: skip
    if resolved.exists() or resolved.is_symlink():
        if not resolved.is_dir():
            raise OutputPathError(f"{path} exists and is not a folder: choose another output path for the {kind}")
        marker = read_marker(resolved)
        if marker is not None and marker.get("kind") != kind:
            raise OutputPathError(
                f"{path} holds a mechscope {marker.get('kind')!r}, not a {kind}: choose another output folder"
            )
        try:
            foreign = _foreign_entries(resolved, marker)
        except OSError as exc:
            raise OutputPathError(f"cannot read the folder {path} ({exc.strerror or exc})") from None
        if foreign and not force:
            what = "is a folder mechscope did not create" if marker is None else "holds files mechscope did not write"
            raise OutputPathError(
                f"{path} {what} ({', '.join(foreign[:3])}{', …' if len(foreign) > 3 else ''}): "
                f"choose a new folder, or pass --force to add the {kind}'s files to it (yours are kept)"
            )
        if not os.access(resolved, os.W_OK | os.X_OK):
            raise OutputPathError(f"the folder {path} is not writable: choose another output path")
        if not os.access(resolved.parent, os.W_OK | os.X_OK) and not foreign:
            raise OutputPathError(f"the folder {resolved.parent} is not writable: choose another output path")
        return resolved
    _check_creatable(resolved, path)
    return resolved


def _check_creatable(resolved: Path, shown: Path) -> None:
    """Refuse a path whose nearest existing ancestor is a file or is unwritable."""
    ancestor = resolved.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"cannot create {shown}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot create {shown}: the folder {ancestor} is not writable")


def check_output_file(path: str | os.PathLike, *, suffixes: tuple[str, ...] = (), create_parents: bool = False) -> Path:
    """Check, before any work, that a single output file (a figure, a JSON) can be written at ``path``.

    Refused with one line: a directory, a missing folder (unless ``create_parents``), an unwritable
    folder, a suffix not in ``suffixes`` (when given, e.g. ``(".png",)``). Returns ``path`` resolved.
    """
    path = Path(path).expanduser()
    resolved = path.resolve()
    if resolved.is_dir():
        raise OutputPathError(f"{path} is a folder: give a file name (e.g. {path / ('out' + (suffixes[0] if suffixes else ''))})")
    if suffixes and resolved.suffix.lower() not in suffixes:
        raise OutputPathError(f"{path} should end in {' or '.join(suffixes)}")
    if not resolved.parent.exists():
        if not create_parents:
            raise OutputPathError(f"the folder {path.parent} does not exist: create it first or choose another path")
        _check_creatable(resolved, path)
        return resolved
    if not resolved.parent.is_dir():
        raise OutputPathError(f"cannot write {path}: {resolved.parent} is not a folder")
    if not os.access(resolved.parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {path}: the folder {path.parent} is not writable")
    if resolved.exists() and not os.access(resolved, os.W_OK):
        raise OutputPathError(f"cannot write {path}: the file is read-only")
    return resolved


# --------------------------------------------------------------------------------- artifact directories
FileSource = bytes | str | Callable[[Path], None]
"""What an artifact file holds: bytes, text (UTF-8), or a function that writes the file at a given path."""


def write_source(path: Path, source: FileSource) -> None:
    """Write one artifact file: bytes, UTF-8 text, or call the function that writes it."""
    if callable(source):
        source(path)
    elif isinstance(source, str):
        path.write_bytes(source.encode("utf-8"))
    else:
        path.write_bytes(bytes(source))


def write_artifact(directory: str | os.PathLike, tensors: Mapping[str, Tensor] | None, meta: dict | None, *,
                   kind: str, fingerprint: str | None = None, version: int = 1,
                   files: Mapping[str, FileSource] | None = None, tensors_file: str = TENSORS_FILE,
                   meta_file: str = META_FILE, force: bool = False) -> Path:  # fmt: skip
    """Write an artifact directory atomically; returns it.

    ``tensors`` go to ``tensors_file`` (safetensors), ``meta`` to ``meta_file`` (strict JSON: non-finite
    floats become ``null``), each ``files`` entry to its name. The marker lists every file with its size and SHA-256, the ``kind``,
    ``version`` and model ``fingerprint``. The directory is built under a temporary sibling and renamed
    into place; a previous artifact of the same kind there is replaced only after the new one is
    complete. The rules of :func:`check_output_dir` apply (a user's folder is refused, or with ``force``
    gets only our files, each written atomically, marker last).
    """
    from safetensors.torch import save_file

    directory = check_output_dir(directory, kind, force=force)
    content: dict[str, FileSource] = dict(files or {})
    if tensors is not None:
        flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        content[tensors_file] = lambda p: save_file(flat, str(p))
    if meta is not None:
        content[meta_file] = dumps(meta) + "\n"
    for name in content:
        if name == MARKER_FILE or "/" in name or "\\" in name or name in ("", ".", "..") or _is_temporary(name):
            raise ValueError(f"invalid artifact file name {name!r}")

    def marker_for(root: Path) -> dict:
        return marker(kind, _file_records(root, sorted(content)), fingerprint=fingerprint, version=version)

    existing = directory.is_dir()
    old_marker = read_marker(directory) if existing else None
    if existing and _foreign_entries(directory, old_marker):  # only reachable with force: add our files in place
        listed = set(old_marker["files"]) if old_marker else set()
        clash = sorted(n for n in [*content, MARKER_FILE] if (directory / n).exists() and n not in listed
                       and not (n == MARKER_FILE and old_marker))  # fmt: skip
        if clash:
            raise OutputPathError(f"{directory} already holds {', '.join(clash[:3])}, which mechscope did not write: "
                                  f"move {'it' if len(clash) == 1 else 'them'} or choose another folder")  # fmt: skip
        for name, source in content.items():
            with atomic_path(directory / name) as tmp:
                write_source(tmp, source)
        for stale in set(old_marker["files"]) - set(content) if old_marker else ():
            (directory / stale).unlink(missing_ok=True)
        write_json(directory / MARKER_FILE, marker_for(directory))
        return directory
    with atomic_dir(directory, kind, force=force) as tmp:
        for name, source in content.items():
            write_source(tmp / name, source)
        write_json(tmp / MARKER_FILE, marker_for(tmp))
    return directory


@contextmanager
def atomic_dir(directory: str | os.PathLike, kind: str, *, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``directory``; on success it is renamed onto ``directory``.

    For writers that fill a whole folder (``save_pretrained``, a store). The writer puts mechscope's
    marker (:data:`MARKER_FILE`, of this ``kind``) into the folder itself, or one listing every file
    with its SHA-256 is written for it. An existing ``directory`` must pass :func:`check_output_dir`
    and hold nothing but an artifact of this kind (or nothing at all); it is swapped out only once the
    new folder is complete, then deleted. On error the temporary folder is removed, the old one kept.
    """
    directory = check_output_dir(directory, kind, force=force)
    if directory.is_dir() and _foreign_entries(directory, read_marker(directory)):
        raise OutputPathError(f"{directory} holds files mechscope did not write: a {kind} cannot replace it as a whole")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}{_TMP_TAG}", dir=directory.parent))
    try:
        yield tmp
        if read_marker(tmp) is None:
            names = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file() and p.name != MARKER_FILE)
            (tmp / MARKER_FILE).write_text(json.dumps(marker(kind, _file_records(tmp, names)), indent=1) + "\n")
        elif read_marker(tmp).get("kind") != kind:
            raise ValueError(f"the marker written into {tmp} is not of kind {kind!r}")
        for p in tmp.rglob("*"):
            if p.is_file():
                _fsync_file(p)
        _fsync_dir(tmp)
        if directory.is_dir() and _foreign_entries(directory, read_marker(directory)):  # changed while we worked
            raise OutputPathError(f"{directory} now holds files mechscope did not write: the {kind} was not saved there")
        if directory.is_dir() and any(directory.iterdir()):  # our own artifact of this kind: swap, then delete
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}{_TMP_TAG}old-", dir=directory.parent))
            os.replace(directory, old)
            try:
                os.replace(tmp, directory)
            except BaseException:
                os.replace(old, directory)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:  # absent, or an empty folder (a rename onto an empty directory is atomic on POSIX)
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(directory.parent)


def _file_records(root: Path, names: list[str]) -> dict[str, dict]:
    return {n: {"size": (root / n).stat().st_size, "sha256": sha256_file(root / n)} for n in names}


def marker(kind: str, files: dict[str, dict], *, fingerprint: str | None = None, version: int = 1, **extra) -> dict:
    """A marker dict (for writers that write their own, e.g. a cache whose manifest is its marker)."""
    return {"format": MARKER_FORMAT, "kind": kind, "version": version, "fingerprint": fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra, "files": files}  # fmt: skip


def verify_artifact(directory: str | os.PathLike, kind: str, fingerprint: str | None = None, *,
                    verify: bool = True, fix: str = "") -> dict:  # fmt: skip
    """The marker of the artifact at ``directory`` after checking it; raises :class:`ArtifactError`.

    Checks: the directory and its marker exist, the kind matches, the fingerprint matches (when both
    are known), every listed file exists with its recorded size, and with ``verify`` its SHA-256.
    ``fix`` is appended to messages (e.g. ``"retrain it with `mechscope lens train-tuned`"``).
    """
    directory = Path(directory).expanduser()
    tail = f": {fix}" if fix else ""
    if not directory.is_dir():
        raise ArtifactError(f"no {kind} at {directory}{tail}")
    marker = read_marker(directory)
    if marker is None:
        if (directory / MARKER_FILE).exists():
            raise ArtifactError(f"the {kind} at {directory} has an unreadable {MARKER_FILE}{tail}")
        raise ArtifactError(f"{directory} is not a mechscope {kind} (no {MARKER_FILE}){tail}")
    if marker.get("kind") != kind:
        raise ArtifactError(f"{directory} holds a mechscope {marker.get('kind')!r}, not a {kind}{tail}")
    have = marker.get("fingerprint")
    if fingerprint and have and have != fingerprint:
        raise ArtifactError(f"the {kind} at {directory} was made for another model (fingerprint {have}, "
                            f"this model is {fingerprint}){tail}")  # fmt: skip
    for name, rec in marker["files"].items():
        path = directory / name
        try:
            size = path.stat().st_size if path.is_file() else None
        except OSError:
            size = None
        if size is None:
            raise ArtifactError(f"the {kind} at {directory} is incomplete ({name} is missing){tail}")
        if not isinstance(rec, dict) or size != rec.get("size"):
            raise ArtifactError(f"the {kind} at {directory} is corrupted ({name} has {size} bytes, "
                                f"{rec.get('size') if isinstance(rec, dict) else '?'} expected){tail}")  # fmt: skip
        if verify and sha256_file(path) != rec.get("sha256"):
            raise ArtifactError(f"the {kind} at {directory} is corrupted ({name} fails its checksum){tail}")
    return marker


def read_artifact(directory: str | os.PathLike, kind: str, fingerprint: str | None = None, verify: bool = True, *,
                  tensors_file: str = TENSORS_FILE, meta_file: str = META_FILE,
                  fix: str = "") -> tuple[dict[str, Tensor], dict]:  # fmt: skip
    """``(tensors, meta)`` of the artifact at ``directory``, checked by :func:`verify_artifact`.

    A missing tensors or meta file gives ``{}``; unreadable contents raise :class:`ArtifactError`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory).expanduser()
    marker = verify_artifact(directory, kind, fingerprint, verify=verify, fix=fix)
    tail = f": {fix}" if fix else ""
    tensors: dict[str, Tensor] = {}
    meta: dict = {}
    try:
        if tensors_file in marker["files"]:
            tensors = load_file(str(directory / tensors_file))
        if meta_file in marker["files"]:
            meta = json.loads((directory / meta_file).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, SafetensorError) as exc:
        raise ArtifactError(f"the {kind} at {directory} is unreadable ({type(exc).__name__}){tail}") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"the {kind} at {directory} is corrupted ({meta_file} is not a JSON object){tail}")
    return tensors, meta
