"""Corpora: where text comes from, the train / held-out split, and packed token contexts.

    >>> from mechscope.data import CorpusConfig, corpus_contexts
    >>> cfg = CorpusConfig()                                       # the built-in corpus, 128-token contexts
    >>> train = corpus_contexts(model.tokenizer, cfg, "train", max_tokens=200_000)     # doctest: +SKIP
    >>> heldout = corpus_contexts(model.tokenizer, cfg, "heldout")                      # doctest: +SKIP

Sources: ``builtin`` (:mod:`mechscope.data.builtin`, no download) and local files, directories or
globs (:mod:`mechscope.data.files`). Several sources are concatenated in the order given and
de-duplicated. The split is by document hash (:func:`mechscope.data.documents.is_heldout`): a document
is wholly in train or wholly held out, and adding documents never moves another one across.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from jaxtyping import Int

from mechscope.data.documents import CorpusError, Document, dedupe, split

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

BUILTIN = "builtin"


@dataclass(frozen=True)
class CorpusConfig:
    """Which text, how it is split, how it is packed."""

    sources: tuple[str, ...] = (BUILTIN,)
    """``builtin`` and/or local ``.txt`` / ``.jsonl`` / ``.parquet`` files, directories, globs."""
    seq_len: int = 128
    """Tokens per packed context, BOS included."""
    heldout_fraction: float = 0.1
    """Share of documents (by hash) kept out of training for evaluation."""

    def __post_init__(self):
        if isinstance(self.sources, str):
            object.__setattr__(self, "sources", (self.sources,))
        if not self.sources or not all(isinstance(s, str) and s for s in self.sources):
            raise CorpusError(f"corpus sources must be non-empty strings, got {self.sources!r}")
        if not 2 <= self.seq_len <= 1 << 16:
            raise CorpusError(f"seq_len must be between 2 and 65536, got {self.seq_len}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise CorpusError(f"heldout_fraction must be strictly between 0 and 1, got {self.heldout_fraction}")

    def to_dict(self) -> dict:
        return {**asdict(self), "sources": list(self.sources)}


def load_documents(sources: tuple[str, ...] | list[str] | str = (BUILTIN,), progress: bool = True) -> list[Document]:
    """Every document of the sources, in order, de-duplicated."""
    from mechscope.data import builtin, files

    if isinstance(sources, str):
        sources = (sources,)
    docs: list[Document] = []
    for spec in sources:
        docs += builtin.load_builtin(progress) if spec == BUILTIN else files.read_files([spec])
    docs = dedupe(docs)
    if not docs:
        raise CorpusError(f"the corpus {', '.join(sources)} holds no text")
    return docs


def iter_documents(sources: tuple[str, ...] | list[str] | str = (BUILTIN,), progress: bool = True) -> Iterator[Document]:
    """:func:`load_documents` as a stream: files are read as the documents are consumed, duplicates
    dropped on the way (only their 16-byte digests are kept)."""
    from mechscope.data import builtin, files

    if isinstance(sources, str):
        sources = (sources,)
    for spec in sources:  # check every spec before reading any
        if spec != BUILTIN:
            files.expand(spec)
    seen: set[str] = set()
    for spec in sources:
        for doc in builtin.load_builtin(progress) if spec == BUILTIN else files.iter_files([spec]):
            if doc.digest not in seen:
                seen.add(doc.digest)
                yield doc
    if not seen:
        raise CorpusError(f"the corpus {', '.join(sources)} holds no text")


def corpus_documents(cfg: CorpusConfig, which: Literal["train", "heldout", "all"], progress: bool = True) -> list[Document]:
    docs = split(load_documents(cfg.sources, progress), which, cfg.heldout_fraction)
    if not docs:
        raise CorpusError(
            f"no document of {', '.join(cfg.sources)} falls in the {which} split (documents are split by hash, "
            f"{cfg.heldout_fraction:.0%} held out): give more, smaller documents (e.g. .jsonl lines)"
        )
    return docs


def corpus_contexts(tokenizer, cfg: CorpusConfig, which: Literal["train", "heldout", "all"] = "train",
                    max_tokens: int | None = None, progress: bool = True) -> Int[Tensor, "context seq"]:  # fmt: skip
    """Packed contexts (:func:`mechscope.data.packing.pack`) of one split."""
    from mechscope.data.packing import pack

    return pack(tokenizer, corpus_documents(cfg, which, progress), cfg.seq_len, max_tokens)


def corpus_batches(tokenizer, cfg: CorpusConfig, which: Literal["train", "heldout", "all"] = "train",
                   batch_size: int = 256, max_tokens: int | None = None,
                   progress: bool = True) -> Iterator[Int[Tensor, "context seq"]]:  # fmt: skip
    """The same contexts as :func:`corpus_contexts`, streamed in batches (files read lazily): for
    harvests over millions of tokens."""
    from mechscope.data.documents import is_heldout
    from mechscope.data.packing import iter_context_batches

    if which not in ("train", "heldout", "all"):
        raise CorpusError(f"split must be train, heldout or all, got {which!r}")
    docs = iter_documents(cfg.sources, progress)
    if which != "all":
        want = which == "heldout"
        docs = (d for d in docs if is_heldout(d, cfg.heldout_fraction) == want)
    yield from iter_context_batches(tokenizer, docs, cfg.seq_len, batch_size, max_tokens)
