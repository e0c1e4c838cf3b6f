"""Documents and the deterministic train / held-out split shared by every corpus source."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mechscope.errors import CorpusError

Split = Literal["train", "heldout", "all"]


@dataclass(frozen=True)
class Document:
    """One piece of running text."""

    text: str
    source: str
    """Where it came from: ``pydoc:assert``, ``stdlib:json/__init__.py:JSONDecoder``, ``file:notes.txt:3`` ..."""

    @property
    def digest(self) -> str:
        return hashlib.blake2b(normalise(self.text).encode(), digest_size=16).hexdigest()


_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Whitespace-collapsed text, the key for de-duplication and for the split."""
    return _SPACE.sub(" ", text).strip()


def dedupe(docs: Iterable[Document]) -> list[Document]:
    """Drop documents whose whitespace-normalised text was seen before (first occurrence wins)."""
    seen: set[str] = set()
    out = []
    for doc in docs:
        key = doc.digest
        if key not in seen:
            seen.add(key)
            out.append(doc)
    return out


def is_heldout(doc: Document, fraction: float) -> bool:
    """Held-out membership from the text's hash: stable when other documents come or go."""
    return int(doc.digest[:12], 16) / 16**12 < fraction


def split(docs: list[Document], which: Split, fraction: float) -> list[Document]:
    """``train`` / ``heldout`` subsets (by document hash), or ``all``."""
    if which == "all":
        return docs
    if which not in ("train", "heldout"):
        raise CorpusError(f"split must be train, heldout or all, got {which!r}")
    want = which == "heldout"
    return [d for d in docs if is_heldout(d, fraction) == want]
