"""The built-in offline corpus: English prose already installed with Python, no download.

Sources, in this order:

1. ``pydoc_data.topics``: CPython's documentation topics (the text ``help("assert")`` shows), one
   document per topic, sorted by name (~465k characters on 3.11).
2. Docstrings of the standard library's modules, classes and functions, read with :mod:`ast` from the
   ``.py`` sources (nothing is imported or executed), files sorted by path, test suites and
   ``site-packages`` excluded.

Documents shorter than :data:`MIN_CHARS` or with too little prose (letters and spaces under
:data:`MIN_PROSE` of the characters, e.g. doctest listings) are dropped, then exact duplicates (after
collapsing whitespace). The same Python gives the same corpus, byte for byte. The result is cached as
``docs.jsonl`` + ``manifest.json`` (counts, Python version, SHA-256 of the file) under
``$MECHSCOPE_HOME/corpus/builtin-py<version>-v1/``, written atomically; a cache whose checksum does
not match is rebuilt. On CPython 3.11.7: 3,537 documents, 1.9 M characters; with Gemma 3's tokenizer
442,880 training + 34,432 held-out tokens in 128-token contexts (10 % of documents held out).
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

from mechscope.data.documents import CorpusError, Document, dedupe
from mechscope.errors import MechscopeError
from mechscope.io import MARKER_FILE, atomic_dir, marker, read_marker, write_json

log = logging.getLogger("mechscope")

VERSION = 1
"""Bump when the assembly rules change (the cache directory name includes it)."""
MIN_CHARS = 120
"""Shortest document kept, in characters."""
MIN_PROSE = 0.75
"""Least fraction of characters that are letters, spaces or common punctuation."""
EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
                           "turtledemo", "lib2to3", "ensurepip", "pydoc_data"})  # fmt: skip
"""Standard-library folders whose docstrings are not prose (or that are not the standard library)."""
DOCS_FILE = "docs.jsonl"
MANIFEST_FILE = "manifest.json"
KIND = "built-in corpus cache"

_PROSE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:'\"()-\n!?")


def cache_dir() -> Path:
    from mechscope.model.convert import home

    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    return home() / "corpus" / f"builtin-py{ver}-v{VERSION}"


def _prose_ok(text: str) -> bool:
    return len(text) >= MIN_CHARS and sum(ch in _PROSE for ch in text) >= MIN_PROSE * len(text)


def pydoc_documents() -> Iterator[Document]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip it
        log.warning("mechscope: pydoc_data is not installed; the built-in corpus uses docstrings only")
        return
    for name in sorted(topics):
        yield Document(topics[name].strip(), f"pydoc:{name}")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[Path]:
    root = root or stdlib_root()
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS and not d.startswith("test"))
        files += [Path(dirpath) / f for f in filenames if f.endswith(".py") and not f.startswith("test")]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def docstring_documents(files: list[Path], root: Path, progress: bool = True) -> Iterator[Document]:
    from tqdm.auto import tqdm

    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for path in tqdm(files, desc="mechscope: reading standard-library docstrings (once)", unit="file",
                     disable=not progress, leave=False):  # fmt: skip
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError, UnicodeDecodeError):
            continue
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, kinds):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    yield Document(doc.strip(), f"stdlib:{rel}:{getattr(node, 'name', '<module>')}")


def assemble(progress: bool = True) -> list[Document]:
    """Build the built-in corpus from scratch (deterministic for a given Python)."""
    root = stdlib_root()
    docs = [*pydoc_documents(), *docstring_documents(stdlib_files(root), root, progress)]
    return dedupe(d for d in docs if _prose_ok(d.text))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _adopt(where: Path) -> None:
    """A cache written before mechscope's artifact marker holds just our two files: mark it as ours."""
    if where.is_dir() and read_marker(where) is None:
        names = {p.name for p in where.iterdir() if ".tmp-" not in p.name}
        if names and names <= {DOCS_FILE, MANIFEST_FILE}:
            write_json(where / MARKER_FILE, marker(KIND, {n: {} for n in sorted(names)}))


def load_builtin(progress: bool = True) -> list[Document]:
    """The built-in corpus, from the cache when it is intact, else assembled and cached (atomically)."""
    where = cache_dir()
    docs_path, manifest_path = where / DOCS_FILE, where / MANIFEST_FILE
    if manifest_path.is_file() and docs_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("sha256") == _sha256(docs_path):
                with open(docs_path, encoding="utf-8") as f:
                    return [Document(**json.loads(line)) for line in f]
            log.warning("mechscope: built-in corpus cache %s is corrupted; rebuilding", where)
        except (OSError, ValueError, TypeError):
            log.warning("mechscope: built-in corpus cache %s is unreadable; rebuilding", where)
    start = time.perf_counter()
    docs = assemble(progress)
    if not docs:
        raise CorpusError("the built-in corpus came out empty: this Python has no pydoc_data and no .py standard library")
    try:
        _adopt(where)
        with atomic_dir(where, KIND) as tmp:
            with open(tmp / DOCS_FILE, "w", encoding="utf-8") as f:
                for d in docs:
                    f.write(json.dumps({"text": d.text, "source": d.source}, ensure_ascii=False) + "\n")
            manifest = {
                "version": VERSION, "python": sys.version.split()[0], "documents": len(docs),
                "characters": sum(len(d.text) for d in docs), "sha256": _sha256(tmp / DOCS_FILE),
                "sources": {"pydoc": sum(d.source.startswith("pydoc:") for d in docs),
                            "stdlib": sum(d.source.startswith("stdlib:") for d in docs)},
                "seconds": round(time.perf_counter() - start, 1),
            }  # fmt: skip
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    except (OSError, MechscopeError) as exc:
        log.warning("mechscope: could not cache the built-in corpus at %s (%s); using it uncached", where, exc)
    return docs
