"""Where the feature pass reads activations (an activation store, or the corpus through the model) and
the pass itself: chunks in, :class:`~mechscope.sae.features.FeatureStats` out.

Both sources yield ``(first_context, tokens [context, seq], acts [context, pos, d_in])`` with BOS left
out of ``acts``: ``acts[:, i]`` is token position ``i + first_position``. A store made with
``skip_bos=False`` has its position 0 dropped here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from mechscope.errors import ArtifactError

Chunk = tuple[int, Tensor, Tensor]


def open_store(store, model, sae):
    """``store`` (a path or an open store) checked against the model and the SAE's input hook."""
    from mechscope.sae.store import ActivationStore

    if not isinstance(store, ActivationStore):
        store = ActivationStore(Path(store), model)
    elif store.fingerprint and model.fingerprint and store.fingerprint != model.fingerprint:
        raise ArtifactError(f"the store at {store.path} was harvested from another model ({store.model_name}, "
                            f"fingerprint {store.fingerprint}; {model.name} is {model.fingerprint})")  # fmt: skip
    hook = model.spec(sae.hook).name
    if hook not in store.dims:
        raise ArtifactError(f"the store at {store.path} holds {', '.join(store.dims)}, not {hook} (the SAE's input "
                            f"hook): give a store of {hook}, or omit --store to run the corpus through the model")  # fmt: skip
    return store


def _bos_skip(model, first_position: int) -> int:
    return 1 if first_position == 0 and model.tokenizer.bos_token_id is not None else 0


def store_chunks(store, model, hook: str) -> tuple[int, int, Iterator[Chunk]]:
    """``(first_position, tokens, chunks)`` of a store: every shard in order."""
    skip = _bos_skip(model, store.config.first_position)

    def chunks() -> Iterator[Chunk]:
        for name in store.shard_names:
            tokens, acts = store.shard(name, [hook])
            yield store.shard_contexts[name][0], tokens, acts[hook][:, skip:]

    return store.config.first_position + skip, store.n_contexts * (store.positions - skip), chunks()


def corpus_chunks(model, hook: str, cfg, progress: bool) -> tuple[int, int, Iterator[Chunk]]:
    """``(first_position, tokens, chunks)`` of ``cfg.tokens`` corpus tokens run through the model."""
    from mechscope.data.corpus import corpus_batches

    first = _bos_skip(model, 0)

    def chunks() -> Iterator[Chunk]:
        seen = 0
        for batch in corpus_batches(model.tokenizer, cfg.corpus, cfg.split, cfg.batch_contexts, cfg.tokens,
                                    progress=progress):  # fmt: skip
            acts = model.collect(batch, [hook], prepend_bos=False)[hook][:, first:]
            yield seen, batch, acts
            seen += batch.shape[0]

    per_context = cfg.corpus.seq_len - first
    return first, cfg.tokens // cfg.corpus.seq_len * per_context, chunks()


def _compact(tables: dict[str, Tensor], starts: list[int], token_chunks: list[Tensor]) -> Tensor:
    """Keep the tokens of the contexts the tables refer to; add ``top.row`` / ``sample.row`` into them
    (-1 for a placeholder: a latent with fewer firing contexts than the table holds)."""
    ids_all = torch.cat([torch.arange(s, s + t.shape[0]) for s, t in zip(starts, token_chunks)])
    order = ids_all.argsort()
    ids_all, all_tokens = ids_all[order], torch.cat(token_chunks)[order]
    sides = ("top", "sample")
    ids = torch.cat([tables[f"{s}.context"].flatten() for s in sides])
    uniq, inv = torch.unique(ids, return_inverse=True)
    if uniq.numel() and uniq[0] < 0:  # placeholders (context -1) get row -1
        uniq, inv = uniq[1:], inv - 1
    at = 0
    for s in sides:
        shape = tables[f"{s}.context"].shape
        tables[f"{s}.row"] = inv[at:at + shape.numel()].reshape(shape)
        at += shape.numel()
    return all_tokens[torch.searchsorted(ids_all, uniq)]


@torch.no_grad()
def scan(model, sae, cfg, store=None, *, progress: bool | Callable[[int, int], None] = False):
    """One pass over the source: statistics of every latent of ``sae`` (a ``FeatureStats``, not yet cached).

    ``progress``: True for a tqdm bar, or a callable ``progress(done_tokens, total_tokens)`` called after
    each chunk (the web workbench's job progress; an exception it raises stops the pass)."""
    from mechscope.sae.feature_stats import FeatureAccumulator, encode_chunks
    from mechscope.sae.features import FeatureStats

    hook = model.spec(sae.hook).name
    t0 = time.perf_counter()
    if store is not None:
        first, total, chunks = store_chunks(store, model, hook)
    else:
        first, total, chunks = corpus_chunks(model, hook, cfg, progress is True)
    acc = FeatureAccumulator(sae.cfg.width, k=cfg.k, samples=cfg.samples, bins=cfg.hist_bins, lo=cfg.hist_min,
                             hi=cfg.hist_max, seed=cfg.seed, device=sae.W_enc.device)  # fmt: skip
    bar, report, done = None, progress if callable(progress) else None, 0
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"mechscope: SAE features at {hook}", unit="tok", unit_scale=True, leave=False)
    starts, token_chunks, n_contexts = [], [], 0
    for start, tokens, acts in chunks:
        for off, f in encode_chunks(sae, acts):
            acc.add(f, start + off)
        starts.append(start)
        token_chunks.append(tokens.to("cpu", torch.int32))
        n_contexts += tokens.shape[0]
        done += acts.shape[0] * acts.shape[1]
        if bar is not None:
            bar.update(acts.shape[0] * acts.shape[1])
        if report is not None:
            report(done, total)
    if bar is not None:
        bar.close()
    if not n_contexts or acc.tokens == 0:
        raise ArtifactError("the source held no activations to scan: give a store with shards or more --tokens")
    tables = acc.tables()
    tokens = _compact(tables, starts, token_chunks)
    meta = {"hook": hook, "target": sae.target, "width": sae.cfg.width, "sae": sae.cfg.label(), "model": model.name,
            "fingerprint": model.fingerprint, "tokens": acc.tokens, "contexts": n_contexts,
            "seq_len": int(token_chunks[0].shape[1]), "first_position": first, "positions": "all but BOS",
            "k": cfg.k, "samples": cfg.samples, "hist_bins": cfg.hist_bins, "hist_min": cfg.hist_min,
            "hist_max": cfg.hist_max, "seed": cfg.seed, "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip
    return FeatureStats(tables, tokens, meta, time.perf_counter() - t0)
