"""Text ↔ tokens with explicit BOS handling and padding that preserves per-prompt results.

Every prompt gets exactly one BOS when the tokenizer has one (we tokenize without special tokens and
prepend it ourselves: the tokenizer converted from Gemma's GGUF adds BOS while reporting
``add_bos_token=False``). Batches are padded left or right with an attention mask and explicit
``position_ids`` (``cumsum(mask) - 1``), so a padded prompt sees the same positions it would alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from mechscope.errors import PromptError

@dataclass(frozen=True)
class Batch:
    """Token ids ready for a forward pass."""

    input_ids: Tensor  # [batch, pos]
    attention_mask: Tensor  # [batch, pos], 1 = real token
    position_ids: Tensor  # [batch, pos]
    padding_side: Literal["left", "right"] = "right"

    @property
    def lengths(self) -> list[int]:
        return self.attention_mask.sum(-1).tolist()

    def last_positions(self) -> Tensor:
        """Index of each prompt's last real token along the position axis: ``[batch]``."""
        if self.padding_side == "left":
            return torch.full((self.input_ids.shape[0],), self.input_ids.shape[1] - 1)
        return self.attention_mask.sum(-1) - 1

    def to(self, device) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.position_ids.to(device),
                     self.padding_side)  # fmt: skip


def check_text(text: str) -> str:
    """``text`` if it is valid Unicode; a prompt that came from bytes that are not UTF-8 (the command line
    turns them into lone surrogates, ``"\\udcff"``) is refused with one line naming the first bad byte."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else f"character U+{ord(bad):04X}"
        raise PromptError(f"the prompt is not valid UTF-8 text ({byte} at character {exc.start}): "
                          "pass text, not binary data") from None  # fmt: skip
    return text


def check_prompt(text: str) -> str:
    """``text`` if it can be a prompt (a non-empty string of valid Unicode), else one line. Needs no
    model: commands call it before loading one, so a bad prompt fails at once."""
    if not isinstance(text, str):
        raise PromptError(f"a prompt must be a string, got {type(text).__name__}")
    if not text:
        raise PromptError("the prompt is empty: give at least one character of text")
    return check_text(text)


def encode(tokenizer, text: str, prepend_bos: bool = True) -> list[int]:
    """Token ids of one prompt, with exactly one BOS in front when ``prepend_bos`` and the tokenizer has one."""
    check_prompt(text)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if prepend_bos and bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def pad(sequences: list[list[int]], pad_id: int, padding_side: Literal["left", "right"] = "right") -> Batch:
    if padding_side not in ("left", "right"):
        raise PromptError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if not sequences:
        raise PromptError("no prompts given")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        sl = slice(width - len(seq), width) if padding_side == "left" else slice(0, len(seq))
        ids[row, sl] = torch.tensor(seq, dtype=torch.long)
        mask[row, sl] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, mask, position_ids, padding_side)


def str_tokens(tokenizer, ids: list[int], visible: bool = False) -> list[str]:
    """Each token decoded on its own (``" very"``): the form for ``--json`` and every API result.

    ``visible=True`` gives the display form of :func:`mechscope.viz.tokens.visible` (``␣very``), the one
    home of that drawing; use it only for human output.
    """
    out = [tokenizer.decode([int(i)], skip_special_tokens=False, clean_up_tokenization_spaces=False) for i in ids]
    if visible:
        from mechscope.viz.tokens import visible as show

        out = [show(s) for s in out]
    return out
