"""Pieces shared by the attribution analyses: answer tokens, the logit-difference metric, prompts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechscope.errors import PromptError


@dataclass(frozen=True)
class Answer:
    """The token(s) a metric reads: ``answer`` and optionally ``wrong`` (logit difference answer − wrong)."""

    answer: str
    answer_id: int
    wrong: str | None = None
    wrong_id: int | None = None

    @property
    def ids(self) -> list[int]:
        return [self.answer_id] if self.wrong_id is None else [self.answer_id, self.wrong_id]

    @property
    def label(self) -> str:
        return f"logit({self.answer!r})" + (f" − logit({self.wrong!r})" if self.wrong is not None else "")


def answer(model, answer: str, wrong: str | None = None) -> Answer:
    """Resolve answer/wrong to single token ids; a text that is not exactly one token is a one-line error."""
    if not isinstance(answer, str) or not answer:
        raise PromptError("--answer must be a non-empty token text such as ' Paris'")
    a = model.token_id(answer)
    w = model.token_id(wrong) if wrong is not None else None
    if w is not None and w == a:
        raise PromptError(f"--answer and --wrong are the same token ({answer!r}): the logit difference would be 0")
    return Answer(answer, a, wrong, w)


def direction(model, ans: Answer) -> tuple[Float[Tensor, "d_model"], float]:
    """The unembedding direction of the metric (``W_U[:, a] − W_U[:, b]``) and its bias term."""
    W = model.unembed.weight  # [d_vocab, d_model]
    u = W[ans.answer_id].float().clone()
    b = model.unembed.bias
    const = float(b[ans.answer_id]) if b is not None else 0.0
    if ans.wrong_id is not None:
        u -= W[ans.wrong_id].float()
        const -= float(b[ans.wrong_id]) if b is not None else 0.0
    return u, const


def answer_logits(model, normed: Float[Tensor, "batch d_model"], ans: Answer) -> Float[Tensor, "batch n_ids"]:
    """Logits (after any softcap) of the answer ids only: ``normed @ W_U[:, ids]``, never the whole vocabulary."""
    ids = torch.tensor(ans.ids, device=normed.device)
    W = model.unembed.weight.index_select(0, ids)  # [n_ids, d_model]
    logits = normed.to(W.dtype) @ W.T
    if model.unembed.bias is not None:
        logits = logits + model.unembed.bias.index_select(0, ids)
    return model.unembed.cap(logits.float())


def logit_diff(logits: Float[Tensor, "batch n_ids"]) -> Float[Tensor, "batch"]:
    """answer − wrong (or the answer's logit alone) from :func:`answer_logits`'s columns."""
    return logits[:, 0] - logits[:, 1] if logits.shape[1] == 2 else logits[:, 0]


def prompt_ids(model, prompt: str) -> Int[Tensor, "pos"]:
    """One prompt's token ids (BOS first), with the model's one-line errors for empty or too long prompts."""
    return model.to_tokens(prompt).input_ids[0]


def subject_positions(model, prompt: str, subject: str) -> list[int]:
    """Token positions (BOS = 0) covering the first occurrence of ``subject`` in ``prompt``."""
    if not subject or not isinstance(subject, str):
        raise PromptError("--subject must be a non-empty part of the prompt")
    start = prompt.find(subject)
    if start < 0:
        raise PromptError(f"the subject {subject!r} does not occur in the prompt {prompt!r} (it must match exactly, case included)")
    end = start + len(subject)
    ids = prompt_ids(model, prompt).tolist()
    pieces = model.to_str_tokens(ids)
    offset = 1 if ids and ids[0] == model.tokenizer.bos_token_id else 0
    spans, pos = [], 0
    for piece in pieces[offset:]:
        spans.append((pos, pos + len(piece)))
        pos += len(piece)
    if "".join(pieces[offset:]) != prompt:  # decoded pieces do not rebuild the text: use the tokenizer's offsets
        enc = model.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        spans = [tuple(s) for s in enc["offset_mapping"]]
    found = [i + offset for i, (s, e) in enumerate(spans) if s < end and e > start]
    if not found:
        raise PromptError(f"the subject {subject!r} covers no token of the prompt")
    return found
