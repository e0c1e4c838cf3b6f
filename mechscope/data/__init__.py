"""Text in: the built-in offline corpus, local files, the train / held-out split, packed contexts.

    >>> from mechscope.data import CorpusConfig, corpus_contexts                       # doctest: +SKIP
    >>> ctx = corpus_contexts(model.tokenizer, CorpusConfig(), "train", max_tokens=200_000)  # doctest: +SKIP

Modules: ``documents`` (Document, split, CorpusError), ``builtin`` (the corpus assembled from Python's
own documentation), ``files`` (.txt / .jsonl / .parquet, globs), ``packing`` (BOS-led fixed-length
contexts, streamed: ``iter_contexts`` / ``iter_context_batches``; ``pack`` collects them), ``corpus`` (the front). See docs/lens.md, "Corpus". Imports are lazy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "CorpusConfig": "mechscope.data.corpus",
    "corpus_contexts": "mechscope.data.corpus",
    "corpus_documents": "mechscope.data.corpus",
    "load_documents": "mechscope.data.corpus",
    "Document": "mechscope.data.documents",
    "CorpusError": "mechscope.data.documents",
    "pack": "mechscope.data.packing",
    "iter_contexts": "mechscope.data.packing",
    "iter_context_batches": "mechscope.data.packing",
    "iter_documents": "mechscope.data.corpus",
    "corpus_batches": "mechscope.data.corpus",
    "load_builtin": "mechscope.data.builtin",
}

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.data.builtin import load_builtin
    from mechscope.data.corpus import (
        CorpusConfig,
        corpus_batches,
        corpus_contexts,
        corpus_documents,
        iter_documents,
        load_documents,
    )
    from mechscope.data.documents import CorpusError, Document
    from mechscope.data.packing import iter_context_batches, iter_contexts, pack


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mechscope.data' has no attribute {name!r}")


__all__ = sorted(_LAZY)
