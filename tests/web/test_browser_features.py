# ruff: noqa: F811  (pytest fixtures imported from test_browser.py are parameters here)
"""End to end in headless Debian Chromium for the Neurons & features, Steering and Diffing pages (the
fixtures and the screenshot helper of test_browser.py; screenshots under pytest's tmp and
$MECHSCOPE_SCREENSHOTS): a feature page with its top contexts highlighted, the steering slider changing
the generations, the diff heatmap."""

from __future__ import annotations

import pytest

from tests.web.features_fixtures import SEQ_LEN, build_runs
from tests.web.test_browser import browser, page, screenshot, shots  # noqa: F401 (fixtures)

TOKENS = 160


@pytest.fixture(scope="module")
def runs(tiny_gemma, tmp_path_factory):
    root = tmp_path_factory.mktemp("featruns")
    return root, build_runs(root, tiny_gemma)


@pytest.fixture(scope="module")
def live(tiny_gemma, runs, tmp_path_factory):
    from mechscope.web import create_app
    from tests.web.conftest import LiveServer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MECHSCOPE_HOME", str(tmp_path_factory.mktemp("home")))
        with LiveServer(create_app(model=tiny_gemma, runs=[runs[0]])) as server:
            yield server


@pytest.fixture(scope="module")
def busiest(tiny_gemma, runs):
    """The latent that fires most on the corpus (computed without touching the page's cache)."""
    from mechscope.data.corpus import CorpusConfig
    from mechscope.sae.artifact import load
    from mechscope.sae.feature_config import FeaturesConfig
    from mechscope.sae.features import features

    sae = load(runs[1]["sae"], tiny_gemma)
    cfg = FeaturesConfig(tokens=TOKENS, corpus=CorpusConfig(sources=(runs[1]["corpus"],), seq_len=SEQ_LEN))
    return int(features(tiny_gemma, sae, None, cfg, cache=False).fires.argmax())


def _plotted(page, selector: str) -> None:
    page.wait_for_function(f"document.querySelector('{selector}') && document.querySelector('{selector}').data "
                           f"&& document.querySelector('{selector}').data.length > 0", timeout=20_000)  # fmt: skip


def test_feature_page_highlights_top_contexts(page, shots, runs, busiest):
    from urllib.parse import quote

    corpus = quote(runs[1]["corpus"])
    page.goto(page.base + f"/#/features?sae=sae&latent={busiest}&corpus={corpus}&seq_len={SEQ_LEN}&tokens={TOKENS}")
    page.wait_for_selector("#feat-top .tok.on", timeout=20_000)  # the scan job ran, then the dashboard drew
    assert f"Latent {busiest} of 32" in page.inner_text("#feat-stats")
    on = page.locator("#feat-top .tok.on")
    assert on.count() >= 1 and "rgba(255, 120, 0" in on.first.get_attribute("style").replace(",", ", ").replace(",  ", ", ")
    _plotted(page, "#feat-hist")
    assert page.locator("#feat-logits tr").count() >= 10 and page.locator("#feat-similar a").count() == 10
    page.click("#feat-text-run")
    page.wait_for_selector("#feat-text-out .tok")
    assert page.locator("#feat-text-out .tok").first.inner_text() == "<bos>"
    screenshot(page, shots, "features")
    page.locator("#feat-similar a").first.click()  # another latent opens from the cache
    page.wait_for_function(f"!document.querySelector('#feat-stats').innerText.includes('Latent {busiest} ')")
    assert "cached" in page.inner_text("#feat-status")


def test_steering_slider_changes_generations(page, shots, busiest):
    page.goto(page.base + f"/#/steer?sae=sae&latent={busiest}&prompt=The%20capital%20of%20France%20is")
    page.wait_for_selector("#st-steered .continuation")
    assert page.inner_text("#st-steered h2") == "Dose 0"
    before = page.inner_text("#st-steered .continuation")
    assert before == page.inner_text("#st-clean .continuation")
    page.eval_on_selector("#st-dose", "s => { s.value = 90; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); }")
    page.wait_for_function("document.querySelector('#st-steered h2').innerText === 'Dose 90'")
    assert page.inner_text("#st-dose-value") == "90"
    assert page.inner_text("#st-steered .continuation") != before  # the dose changed what the model says
    assert "KL from unsteered 0.0000" not in page.inner_text("#st-steered")
    page.click("#vec-make")
    page.wait_for_function("document.querySelector('#vec-info').innerText.includes('builtin:doubt')", timeout=20_000)
    page.click("#vec-apply")
    _plotted(page, "#vec-curve")
    assert page.locator("#vec-out .panel").count() == 5
    screenshot(page, shots, "steering")


def test_diff_page_renders_heatmap(page, shots, tiny_gemma):
    page.goto(page.base + "/#/diff")
    page.fill("#diff-tuned", "tuned")
    page.fill("#diff-seq-len", str(SEQ_LEN))
    page.fill("#diff-generate", "3")
    page.click("#diff-run")
    _plotted(page, "#diff-heatmap")
    _plotted(page, "#diff-promoted")
    _plotted(page, "#diff-steer")
    z = page.evaluate("document.querySelector('#diff-heatmap').data[0].z")
    assert len(z) == tiny_gemma.cfg.n_layers and max(z[0]) == 0 and max(z[1]) > 0  # the nudge is in layer 1
    assert "done" in page.inner_text("#diff-status")
    screenshot(page, shots, "diff")


def test_neuron_page_shows_top_and_bottom_contexts(page, shots, runs):
    from urllib.parse import quote

    corpus = quote(runs[1]["corpus"])
    page.goto(page.base + f"/#/features?hook=blocks.1.mlp.hook_post&unit=7&corpus={corpus}&seq_len={SEQ_LEN}&tokens={TOKENS}")
    page.wait_for_selector("#feat-bottom .tok", timeout=20_000)
    assert "Unit 7 of 96 at blocks.1.mlp.hook_post" in page.inner_text("#feat-stats")
    assert page.locator("#feat-top .ctx").count() == 10 and page.locator("#feat-top .tok.on").count() >= 1
    screenshot(page, shots, "neuron")


def test_diff_page_crosscoder(page, shots):
    page.goto(page.base + "/#/diff")
    page.fill("#diff-tuned", "tuned")
    page.fill("#diff-seq-len", str(SEQ_LEN))
    page.check("#diff-crosscoder")
    page.fill("#diff-width", "16")
    page.fill("#diff-k", "2")
    page.fill("#diff-cc-tokens", "50")  # the prompts hold 52 rows: no corpus top-up
    page.click("#diff-run")
    _plotted(page, "#diff-cc-hist")
    text = page.inner_text("#diff-cc")
    assert "Crosscoder: width 16, k 2" in text and "tuned-only" in text
    screenshot(page, shots, "diff-crosscoder")
