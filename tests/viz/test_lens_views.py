"""Lens figures from plain data: terminal grid, PNG, self-contained HTML, residual-vector images."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mechscope.lens.logit import logit_lens
from mechscope.viz.lens_html import lens_fragment, lens_page
from mechscope.viz.palette import prob_color, text_on, viridis
from mechscope.viz.terminal import render_lens, topk_lines
from mechscope.viz.tokens import clip, visible
from mechscope.viz.vectors import as_square, save_vector_images, square_shape
from tests.tiny import tiny_model

PROMPT = "The capital of France is Paris. The reliability of Wikipedia is very"


@pytest.fixture(scope="module")
def result():
    return logit_lens(tiny_model("gemma3"), PROMPT, top_k=5, targets=[9])


def test_visible_tokens_and_clipping():
    assert visible(" a\n\t") == "␣a↵⇥" and visible("") == "∅" and visible("\x01") == "␁"
    assert clip("abcdef", 4) == "abc…" and clip("abc", 4) == "abc"


def test_palette():
    assert viridis(0) == "#440154" and viridis(1) == "#fde725" and viridis(2) == "#fde725"
    assert prob_color(0.25) == viridis(0.5)  # square-root scale
    assert text_on("#fde725") == "#000000" and text_on("#440154") == "#ffffff"


def test_terminal_view_plain_and_coloured(result):
    data = result.to_dict()
    plain = render_lens(data, 5, width=100, color=False)
    assert "\x1b[" not in plain and "%" in plain and "embed" in plain and "top-5 at position 5" in plain
    lines = plain.splitlines()
    assert sum(1 for ln in lines if re.match(r"^(embed|L\d+)\s", ln)) == 2 * result.n_rows  # grid + table
    assert max(len(ln) for ln in lines[:4 + result.n_rows]) <= 100 + 2  # the grid fits the width
    assert "positions" in plain  # the window note: not every position fits in 100 columns
    coloured = render_lens(data, -1 % result.n_pos, width=200, color=True)
    assert "\x1b[48;5;" in coloured
    assert len(topk_lines(data, 0)) == result.n_rows


def test_png_has_the_expected_layout(result, tmp_path):
    from PIL import Image

    path = result.save_png(tmp_path / "lens.png", position=3)
    with Image.open(path) as im:
        w, h = im.size
    assert w > h > 300  # wide: heatmap + top-k panel
    assert path.stat().st_size > 20_000


def test_html_is_self_contained_and_carries_the_data(result, tmp_path):
    data = result.to_dict()
    page = lens_page(data, 4)
    assert page.startswith("<!doctype html>") and "<script>" in page
    assert not re.search(r"(src|href)=[\"']?https?:", page) and "cdn" not in page.lower()
    embedded = re.search(r'<script type="application/json">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded.replace("<\\/", "</")) == json.loads(json.dumps(data))
    assert page.count("<td data-r=") == result.n_rows * result.n_pos
    assert page.count('data-start="1"') == 1 and 'title="' in page  # no-JS tooltips
    a, b = lens_fragment(data, 0), lens_fragment(data, 0)
    assert re.search(r'id="(ms-lens-\w+)"', a).group(1) != re.search(r'id="(ms-lens-\w+)"', b).group(1)
    assert "<b>" in result._repr_html_()
    out = result.save_html(tmp_path / "lens.html", -1)
    assert out.read_text(encoding="utf-8").count("<td data-r=") == result.n_rows * result.n_pos


def test_vectors_are_near_square_images(result, tmp_path):
    assert square_shape(640) == (25, 26) and square_shape(64) == (8, 8) and square_shape(2304) == (48, 48)
    v = np.arange(640, dtype=np.float32)
    sq = as_square(v)
    assert sq.shape == (25, 26) and np.isnan(sq).sum() == 10 and sq[0, 1] == 1 and sq[1, 0] == 26
    path = save_vector_images(result.resid[:, -1].numpy(), [r.label for r in result.rows], tmp_path / "v.png")
    assert path.stat().st_size > 5_000
    assert result.save_vectors(tmp_path / "w.png", position=2).is_file()


def test_kl_figure_of_an_evaluation(tmp_path):
    from mechscope.viz.lens_kl import kl_figure, save_kl_png

    data = {"rows": [{"label": f"L{i}", "logit_kl": 10.0 / (i + 1), "tuned_kl": 1.0 / (i + 1)} for i in range(5)]
            + [{"label": "L5", "logit_kl": 0.2, "tuned_kl": 0.3}], "tokens": 1234}  # fmt: skip
    fig = kl_figure(data, "tiny")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"L{i}" for i in range(6)]
    assert ax.get_yscale() == "log" and "tuned below logit at 5/6 rows" in ax.get_title(loc="left")
    path = save_kl_png(data, tmp_path / "kl.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
