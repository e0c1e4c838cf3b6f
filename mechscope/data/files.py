"""Local text files as documents: ``.txt`` (one document per file), ``.jsonl`` (one per line, the
``text`` field), ``.parquet`` (one per row of the ``text`` column; needs pyarrow, which is optional).

A spec is a path, a directory (every supported file inside, recursively) or a glob (``data/*.jsonl``,
``**`` recurses). Files are read in sorted order, so the same files give the same corpus.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path

from mechscope.data.documents import CorpusError, Document

SUFFIXES = (".txt", ".jsonl", ".parquet")
TEXT_FIELD = "text"


def expand(spec: str) -> list[Path]:
    """The files a spec names, sorted; one-line error when there are none."""
    if any(ch in spec for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(spec, recursive=True))
        files = [p for p in paths if p.is_file() and p.suffix in SUFFIXES]
        if not files:
            raise CorpusError(f"no .txt/.jsonl/.parquet file matches {spec!r}")
        return files
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if not files:
            raise CorpusError(f"{path} holds no .txt, .jsonl or .parquet files")
        return files
    if not path.exists():
        raise CorpusError(f"no such corpus file or directory: {spec} (use 'builtin', a file, a directory or a glob)")
    if path.suffix not in SUFFIXES:
        raise CorpusError(f"{path} is not a .txt, .jsonl or .parquet file")
    return [path]


def read_file(path: Path) -> Iterator[Document]:
    if path.suffix == ".txt":
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            yield Document(text, f"file:{path}")
    elif path.suffix == ".jsonl":
        yield from _read_jsonl(path)
    elif path.suffix == ".parquet":
        yield from _read_parquet(path)


def _read_jsonl(path: Path) -> Iterator[Document]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise CorpusError(f"{path}:{n} is not valid JSON (each line of a .jsonl must be one object)") from None
            text = record.get(TEXT_FIELD) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise CorpusError(f"{path}:{n} has no string field {TEXT_FIELD!r}")
            if text.strip():
                yield Document(text.strip(), f"file:{path}:{n}")


def _read_parquet(path: Path) -> Iterator[Document]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError(f"reading {path.name} needs pyarrow, which is not installed: pip install pyarrow, "
                          "or convert it to .jsonl") from None  # fmt: skip
    try:
        table = pq.read_table(path, columns=[TEXT_FIELD])
    except (KeyError, ValueError) as exc:
        raise CorpusError(f"{path} has no column {TEXT_FIELD!r} ({exc})") from None
    for n, text in enumerate(table.column(TEXT_FIELD).to_pylist()):
        if isinstance(text, str) and text.strip():
            yield Document(text.strip(), f"file:{path}:{n}")


def iter_files(specs: list[str]) -> Iterator[Document]:
    """The documents of every file the specs name, lazily, file by file (each file once)."""
    files = [f for spec in specs for f in expand(spec)]  # every spec is checked before any text is read
    for f in dict.fromkeys(files):
        yield from read_file(f)


def read_files(specs: list[str]) -> list[Document]:
    return list(iter_files(specs))
