"""Parameter counting: the table equals sum(p.numel()) for every tiny architecture; GPT-3 from its shape."""

from __future__ import annotations

import pytest

from mechscope.errors import ConfigError
from mechscope.model.params import COMPONENTS, count_params, published_params


def test_table_equals_numel(tiny):
    table = count_params(tiny)
    assert table.total == sum(p.numel() for p in tiny.hf.parameters())  # parameters() deduplicates tied tensors
    assert sum(table.by_component.values()) == table.total == sum(table.by_part.values())
    assert list(table.by_component) == list(COMPONENTS)
    assert len(table.layers) == tiny.cfg.n_layers
    blocks = {c: sum(row[c] for row in table.layers) for c in ("attn", "mlp", "norms")}
    assert blocks["attn"] == table.by_component["attn"] and blocks["mlp"] == table.by_component["mlp"]
    d, m = tiny.cfg.d_model, tiny.cfg.d_mlp
    weights = 3 if tiny.adapter.gated_mlp else 2
    assert weights * d * m <= table.layers[0]["mlp"] <= weights * d * m + m + d + 2 * d  # weights + any biases
    tied = tiny.W_E.data_ptr() == tiny.W_U.data_ptr()
    assert (table.by_component["unembed"] == 0) == tied
    assert table.by_component["embed"] >= tiny.cfg.d_vocab * d


def test_gpt3_175b():
    t = published_params("gpt3-175b")
    assert t.by_part["mlp.up"] - 96 * 49_152 == 96 * 603_979_776  # 604M per MLP matrix (plus biases)
    assert 0.64 < t.by_component["mlp"] / t.total < 0.68  # about two thirds
    assert 174e9 < t.total < 176e9 and t.total == sum(t.by_component.values())
    assert any("175,181,291,520" in n for n in t.notes)  # 3Blue1Brown's tally


def test_unknown_config():
    with pytest.raises(ConfigError, match="unknown --config 'gpt3-175' \\(did you mean gpt3-175b") as exc:
        published_params("gpt3-175")
    assert "\n" not in str(exc.value)
