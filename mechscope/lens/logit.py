"""The logit lens on every row × every position, model-correct and chunked.

    >>> model = mechscope.load("gemma-3-270m")                                        # doctest: +SKIP
    >>> res = mechscope.lens.logit_lens(model, "The reliability of Wikipedia is very")  # doctest: +SKIP
    >>> res.top(-1, position=-1)[:3]                                                   # doctest: +SKIP
    [('␣important', 4429, 0.294), ('␣high', 1494, 0.115), ('␣low', 3290, 0.079)]

Each row's residual goes through the model's *own* final norm and unembedding (with its logit softcap,
Gemma 2: 30), exactly as the forward computes the output; the last row is the forward's logits
themselves, so it equals the model's output distribution by construction. The other rows are streamed
over vocabulary chunks (:mod:`mechscope.lens.stream`): [rows × positions × vocab] never exists.

A tuned lens (:class:`mechscope.lens.tuned.TunedLens`) passes each row through its translator first;
everything else is the same code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from mechscope.errors import ConfigError
from mechscope.lens import rows as rows_mod
from mechscope.lens.result import LensResult
from mechscope.lens.stream import Final, Unembedding, dense_stats, stream_stats

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.lens.tuned import TunedLens
    from mechscope.model.hooked import HookedModel

Target = str | int


def resolve_targets(model: HookedModel, targets: Sequence[Target] | Target | None) -> tuple[list[int], list[str]]:
    """Target tokens as ids: strings must be exactly one token (``" Paris"``), ints must be in the vocabulary."""
    if targets is None:
        return [], []
    if isinstance(targets, (str, int)):
        targets = [targets]
    ids = []
    for t in targets:
        if isinstance(t, bool) or not isinstance(t, (str, int)):
            raise ConfigError(f"a target must be a token string or id, got {type(t).__name__}")
        if isinstance(t, str):
            ids.append(model.token_id(t))  # PromptError naming the split if not one token
        else:
            if not 0 <= t < model.cfg.d_vocab:
                raise ConfigError(f"target id {t} is outside the vocabulary (0..{model.cfg.d_vocab - 1})")
            ids.append(int(t))
    return ids, model.to_str_tokens(ids, visible=False)


def check_top_k(top_k: int, d_vocab: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= d_vocab:
        raise ConfigError(f"top_k must be an integer between 1 and the vocabulary size {d_vocab}, got {top_k!r}")
    return top_k


@torch.no_grad()
def logit_lens(model: HookedModel, prompt_or_tokens, top_k: int = 10, sublayers: bool = False,
               targets: Sequence[Target] | Target | None = None, *, lens: TunedLens | None = None,
               chunk: int | None = None) -> LensResult:  # fmt: skip
    """Read every residual row of one prompt through the unembedding.

    Rows: the embedding, then each block's output (with ``sublayers``: after attention and after the
    MLP of each block). For each row and position: top-k tokens with probabilities, entropy (nats),
    KL(final ‖ row) (nats), probability and 1-based rank of the actual next token and of each target.

    prompt_or_tokens: text (BOS is added) or token ids. targets: token strings (each exactly one token,
    e.g. ``" Paris"``) or ids. lens: a trained :class:`~mechscope.lens.tuned.TunedLens` to apply its
    translators first (``tuned_lens`` is this with ``lens`` required). chunk: vocabulary chunk size
    (default: sized to stay in cache; ``model.cfg.d_vocab`` disables chunking).
    """
    start = time.perf_counter()
    check_top_k(top_k, model.cfg.d_vocab)
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ConfigError(f"chunk must be a positive integer, got {chunk!r}")
    target_ids, target_tokens = resolve_targets(model, targets)
    ids = rows_mod.prompt_ids(model, prompt_or_tokens)
    rows = rows_mod.lens_rows(model.cfg.n_layers, sublayers)
    if lens is not None:
        lens.check_model(model)
        lens.check_rows(rows)
    final_logits, resid = rows_mod.collect(model, ids, rows)  # [pos, vocab], [row, pos, d_model]
    n_pos = ids.shape[0]
    # tracked ids per position: the actual next token (a placeholder 0 at the last position), then targets
    nxt = torch.cat([ids[1:], ids.new_zeros(1)]).to(resid.device)
    track = torch.stack([nxt, *(torch.full_like(nxt, t) for t in target_ids)], -1)  # [pos, track]
    inner = resid[:-1]
    if lens is not None:
        inner = lens.translate(inner, rows[:-1])
    normed = model.unembed.norm(inner)  # [row-1, pos, d_model]
    unembed = Unembedding(model)
    final = Final.of(final_logits.float())
    stats = stream_stats(unembed, normed.float(), final, top_k, track, chunk)
    last = dense_stats(final, top_k, track)
    stats = type(stats).cat([stats, last])
    next_prob = stats.track_probs[..., 0].clone()
    next_rank = stats.track_ranks[..., 0].clone()
    next_prob[:, n_pos - 1] = float("nan")
    next_rank[:, n_pos - 1] = 0
    return LensResult(
        model=model.name, fingerprint=model.fingerprint, lens="tuned" if lens is not None else "logit",
        token_ids=ids.tolist(), tokens=model.to_str_tokens(ids, visible=False), rows=rows, top_k=top_k,
        top_ids=stats.top_ids.cpu(), top_probs=stats.top_probs.cpu(), entropy=stats.entropy.cpu(),
        kl=stats.kl.cpu(), next_prob=next_prob.cpu(), next_rank=next_rank.cpu(),
        target_ids=target_ids, target_tokens=target_tokens, target_probs=stats.track_probs[..., 1:].cpu(),
        target_ranks=stats.track_ranks[..., 1:].cpu(), resid=resid.cpu(),
        vocab=_decode(model, stats.top_ids), seconds=time.perf_counter() - start,
    )  # fmt: skip


def tuned_lens(model: HookedModel, prompt_or_tokens, lens: TunedLens, top_k: int = 10, sublayers: bool = False,
               targets: Sequence[Target] | Target | None = None, *, chunk: int | None = None) -> LensResult:  # fmt: skip
    """:func:`logit_lens` through a trained tuned lens's translators."""
    return logit_lens(model, prompt_or_tokens, top_k, sublayers, targets, lens=lens, chunk=chunk)


def _decode(model: HookedModel, top_ids: torch.Tensor) -> dict[int, str]:
    """Text of every id that appears in a top-k list (each distinct id decoded once)."""
    unique = torch.unique(top_ids).tolist()
    return dict(zip(unique, model.to_str_tokens(unique, visible=False)))
