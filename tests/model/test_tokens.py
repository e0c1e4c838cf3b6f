"""BOS handling, visible string tokens, and padded batches that equal one-by-one runs."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import PromptError
from tests.tiny import tiny_model

PROMPTS = ["The capital of France is", "Paris", "Sparse autoencoders find features in the residual stream"]


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_padded_batch_equals_each_prompt_alone(tiny, padding_side):
    batch = tiny.to_tokens(PROMPTS, padding_side=padding_side)
    logits = tiny(PROMPTS, padding_side=padding_side)
    for row, prompt in enumerate(PROMPTS):
        alone = tiny(prompt)[0]
        real = batch.attention_mask[row].bool()
        torch.testing.assert_close(logits[row][real], alone, atol=1e-5, rtol=1e-5)


def test_last_positions_for_both_sides():
    model = tiny_model("llama")
    for side in ("left", "right"):
        batch = model.to_tokens(PROMPTS, padding_side=side)
        last = batch.last_positions()
        for row, prompt in enumerate(PROMPTS):
            assert batch.input_ids[row, last[row]].item() == model.to_tokens(prompt).input_ids[0, -1].item()


def test_exactly_one_bos():
    model = tiny_model("gemma3")
    bos = model.tokenizer.bos_token_id
    ids = model.to_tokens("Paris").input_ids[0].tolist()
    assert ids[0] == bos and ids.count(bos) == 1
    ids2 = model.to_tokens("<bos>Paris").input_ids[0].tolist()  # already has one: not doubled
    assert ids2.count(bos) == 1
    assert model.to_tokens("Paris", prepend_bos=False).input_ids[0].tolist() == ids[1:]


def test_visible_string_tokens():
    model = tiny_model("gpt2")
    assert "".join(model.to_str_tokens("The capital\nof")[1:]) == "The capital\nof"  # decoded strings by default
    toks = model.to_str_tokens("The capital\nof", visible=True)
    assert toks[0] == "<bos>"
    assert "".join(toks[1:]).replace("␣", " ").replace("↵", "\n") == "The capital\nof"
    assert any(t.startswith("␣") for t in toks)


def test_bad_prompts():
    model = tiny_model("llama")
    with pytest.raises(PromptError, match="empty"):
        model("")
    with pytest.raises(PromptError, match="context window is 128"):
        model("x " * 400)
    with pytest.raises(PromptError, match="outside the vocabulary"):
        model(torch.tensor([[1, 99999]]))
    with pytest.raises(PromptError, match="not a single token"):
        model.token_id(" reliability of")


def test_str_tokens_are_decoded_strings_and_display_has_one_home():
    from mechscope.model.tokens import str_tokens
    from mechscope.viz.tokens import visible

    model = tiny_model("gpt2")
    ids = model.to_tokens("The capital\n\tof\r").input_ids[0].tolist()
    raw = str_tokens(model.tokenizer, ids)
    assert "".join(raw[1:]) == "The capital\n\tof\r" and any(t.startswith(" ") for t in raw)
    assert str_tokens(model.tokenizer, ids, visible=True) == [visible(t) for t in raw]
    assert not hasattr(__import__("mechscope.model.tokens", fromlist=["x"]), "VISIBLE")


@pytest.mark.parametrize("bad", [b"\xff\xfeabc".decode("utf-8", "surrogateescape"), "abc\ud800"])
def test_a_prompt_that_is_not_utf8_is_one_line(bad):
    model = tiny_model("llama")
    with pytest.raises(PromptError, match="not valid UTF-8") as err:
        model.to_tokens(bad)
    assert "\n" not in str(err.value)
