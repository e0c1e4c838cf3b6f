"""Tokenise documents and pack them into fixed-length contexts, each starting with BOS.

Every document is tokenised without special tokens and followed by EOS; the documents are concatenated
in order into one stream, which is cut into windows of ``seq_len - 1`` tokens, and each window gets a
BOS in front. So every context is exactly ``seq_len`` tokens, starts with BOS (as every prompt does in
mechscope) and may start mid-document, and EOS marks document boundaries inside it. The last partial
window is dropped. A tokenizer without BOS gets windows of ``seq_len`` tokens; one without EOS gets no
separator.

    >>> contexts = pack(model.tokenizer, docs, seq_len=128)     # doctest: +SKIP
    >>> contexts.shape, contexts[:, 0].unique()                 # doctest: +SKIP
    (torch.Size([4690, 128]), tensor([2]))

The packing streams: :func:`iter_contexts` / :func:`iter_context_batches` pull documents lazily and
yield contexts as they fill, so a corpus of any size packs in bounded memory; :func:`pack` collects
them into one tensor for callers that want everything at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from jaxtyping import Int
from torch import Tensor

from mechscope.data.documents import CorpusError, Document

BATCH_DOCS = 256
"""Documents tokenised per tokenizer call."""


def token_stream(tokenizer, docs: Iterable[Document]) -> Iterator[list[int]]:
    """Each document's ids (no special tokens), with EOS appended when the tokenizer has one."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    batch: list[str] = []

    def flush():
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            if bos is not None and ids and ids[0] == bos:  # some converted tokenizers add BOS regardless
                ids = ids[1:]
            yield ids + ([eos] if eos is not None else [])

    for doc in docs:
        batch.append(doc.text)
        if len(batch) == BATCH_DOCS:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def iter_contexts(tokenizer, docs: Iterable[Document], seq_len: int = 128,
                  max_tokens: int | None = None) -> Iterator[list[int]]:  # fmt: skip
    """Contexts of ``seq_len`` token ids, one at a time, each starting with BOS (see the module docstring).

    Lazy: documents are pulled from ``docs`` (any iterable, e.g. a generator over files) and tokenised
    :data:`BATCH_DOCS` at a time, as the contexts are consumed; memory holds one tokeniser batch and
    one partial window, whatever the corpus size. At most ``max_tokens`` tokens in all (BOS included);
    once reached no further document is read. Raises :class:`CorpusError` at the end if the documents
    did not fill one context.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise CorpusError(f"seq_len must be an integer of at least 2, got {seq_len!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0):
        raise CorpusError(f"max_tokens must be a non-negative integer, got {max_tokens!r}")
    bos = tokenizer.bos_token_id
    body = seq_len - 1 if bos is not None else seq_len
    head = [bos] if bos is not None else []
    limit = None if max_tokens is None else max(1, max_tokens // seq_len)
    made = 0
    buffer: list[int] = []
    for ids in token_stream(tokenizer, docs):
        buffer.extend(ids)
        start = 0
        while len(buffer) - start >= body:  # [start, start + body) is the next window
            yield head + buffer[start : start + body]
            start += body
            made += 1
            if limit is not None and made >= limit:
                return
        del buffer[:start]
    if not made:
        raise CorpusError(f"the corpus holds fewer than {body} tokens: not one context of {seq_len} tokens")


def iter_context_batches(tokenizer, docs: Iterable[Document], seq_len: int = 128, batch_size: int = 256,
                         max_tokens: int | None = None) -> Iterator[Int[Tensor, "context seq"]]:  # fmt: skip
    """:func:`iter_contexts` as int64 tensors of ``batch_size`` contexts (the last one may be smaller)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CorpusError(f"batch_size must be a positive integer, got {batch_size!r}")
    rows: list[list[int]] = []
    for ctx in iter_contexts(tokenizer, docs, seq_len, max_tokens):
        rows.append(ctx)
        if len(rows) == batch_size:
            yield torch.tensor(rows, dtype=torch.long)
            rows = []
    if rows:
        yield torch.tensor(rows, dtype=torch.long)


def pack(tokenizer, docs: Iterable[Document], seq_len: int = 128,
         max_tokens: int | None = None) -> Int[Tensor, "context seq"]:  # fmt: skip
    """All contexts at once: :func:`iter_contexts` collected into one ``[context, seq]`` tensor.

    For corpora that fit in memory (a tuned lens's training text); stream with
    :func:`iter_context_batches` otherwise (an SAE harvest).
    """
    return torch.cat(list(iter_context_batches(tokenizer, docs, seq_len, 1024, max_tokens)))
