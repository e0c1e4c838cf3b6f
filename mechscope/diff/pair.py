"""Two models to compare: the same architecture and shapes, the same tokenizer, prompts tokenised once.

A diff only means something between a model and its fine-tune: the same computation graph, the same
widths, the same vocabulary, the same tokens. :func:`check_pair` refuses anything else with one line
naming the first difference; :func:`tokenize_prompts` tokenises the prompts once with the base
tokenizer and checks the tuned tokenizer reads them identically.

    >>> base, tuned = mechscope.load("gemma-3-270m"), mechscope.load("runs/ocean")   # doctest: +SKIP
    >>> check_pair(base, tuned)                                                      # doctest: +SKIP
    >>> ids = tokenize_prompts(base, tuned, ["The sea is", "Hello"], seq_len=64)     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxtyping import Int
from torch import Tensor

from mechscope.errors import ConfigError, PromptError

PROBE = "Model diffing probe: The quick brown fox jumps over 13 lazy dogs; ünïcödé, 日本語, 🙂."
"""A string both tokenizers must split identically (ASCII, digits, accents, CJK, emoji)."""

SHAPE_FIELDS = ("architecture", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_mlp", "d_vocab")
"""The :class:`~mechscope.model.hooked.ModelConfig` fields two diffed models must share."""


def check_pair(base, tuned) -> None:
    """One-line :class:`~mechscope.errors.ConfigError` unless ``base`` and ``tuned`` share the
    architecture, every width, the layer count, the vocabulary size and the tokenizer (checked on
    :data:`PROBE`, the BOS id and the tokenizer's own vocabulary size)."""
    for field in SHAPE_FIELDS:
        a, b = getattr(base.cfg, field), getattr(tuned.cfg, field)
        if a != b:
            raise ConfigError(f"the two models differ in {field} ({base.name}: {a}, {tuned.name}: {b}): "
                              "diff a model against a fine-tune of itself")  # fmt: skip
    tb, tt = base.tokenizer, tuned.tokenizer
    if len(tb) != len(tt):
        raise ConfigError(f"the two models' tokenizers differ in vocabulary size ({len(tb)} vs {len(tt)}): "
                          "diff a model against a fine-tune of itself")  # fmt: skip
    a = tb(PROBE, add_special_tokens=False)["input_ids"]
    b = tt(PROBE, add_special_tokens=False)["input_ids"]
    if a != b or tb.bos_token_id != tt.bos_token_id:
        raise ConfigError("the two models' tokenizers split the same text differently: "
                          "diff a model against a fine-tune of itself (same tokenizer)")  # fmt: skip


def read_prompts(path) -> list[str]:
    """Prompts from a UTF-8 text file, one per line (blank lines skipped); one line on any problem."""
    from pathlib import Path

    from mechscope.model.tokens import check_text

    p = Path(path).expanduser()
    if not p.is_file():
        raise PromptError(f"no prompt file at {p}: give a text file with one prompt per line")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"{p} is not UTF-8 text (byte {exc.start}): give a text file with one prompt per line") from None
    except OSError as exc:
        raise PromptError(f"cannot read {p}: {exc.strerror}") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise PromptError(f"{p} holds no prompt: write one prompt per line")
    for s in prompts:
        check_text(s)
    return prompts


def tokenize_prompts(base, tuned, prompts: Sequence[str], seq_len: int) -> list[list[int]]:
    """Each prompt's token ids (one BOS first, at most ``seq_len`` tokens), tokenised once by ``base``;
    a prompt the tuned tokenizer reads differently is refused."""
    from mechscope.model.tokens import encode

    if not prompts:
        raise PromptError("no prompts given: pass --prompts FILE or --builtin-prompts")
    out = []
    for i, text in enumerate(prompts):
        ids = encode(base.tokenizer, text)
        if tuned is not base and tuned.tokenizer is not base.tokenizer and encode(tuned.tokenizer, text) != ids:
            raise ConfigError(f"prompt {i + 1} ({text[:30]!r}) tokenises differently in the two models: "
                              "diff a model against a fine-tune of itself (same tokenizer)")  # fmt: skip
        out.append(ids[:seq_len])
    return out


def builtin_prompts(base, n: int, seq_len: int) -> list[list[int]]:
    """``n`` contexts of ``seq_len`` tokens (BOS first) from the held-out split of the built-in corpus."""
    from mechscope.data.corpus import CorpusConfig, corpus_contexts

    ctx: Int[Tensor, "n seq"] = corpus_contexts(base.tokenizer, CorpusConfig(seq_len=seq_len), "heldout",
                                                max_tokens=n * seq_len, progress=False)  # fmt: skip
    return [row.tolist() for row in ctx[:n]]


def batches(seqs: list[list[int]], pad_id: int, batch_size: int):
    """Right-padded :class:`~mechscope.model.tokens.Batch` es of ``batch_size`` prompts, in order."""
    from mechscope.model.tokens import pad

    for i in range(0, len(seqs), batch_size):
        yield pad(seqs[i:i + batch_size], pad_id, "right")


def pad_id(model) -> int:
    tok = model.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
