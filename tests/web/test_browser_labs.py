# ruff: noqa: F811  (pytest fixtures imported from test_browser.py are parameters here)
"""End to end in headless Debian Chromium for the Grokking, Circuits and Superposition pages (the fixtures
and the screenshot helper of test_browser.py; screenshots under pytest's tmp and $MECHSCOPE_SCREENSHOTS)."""

from __future__ import annotations

import pytest

from tests.web.labs_runs import make_grok_run
from tests.web.test_browser import browser, page, screenshot, shots  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def live(tiny_gemma, tmp_path_factory):
    from mechscope.web import create_app
    from tests.web.conftest import LiveServer

    root = tmp_path_factory.mktemp("labruns")
    make_grok_run(root / "tiny")
    with LiveServer(create_app(model=tiny_gemma, runs=[root])) as server:
        yield server


def _plotted(page, selector: str) -> None:
    page.wait_for_function(f"document.querySelector('{selector}') && document.querySelector('{selector}').data "
                           f"&& document.querySelector('{selector}').data.length > 0", timeout=20_000)  # fmt: skip


def test_grokking_slider_changes_the_plots(page, shots):
    page.goto(page.base + "/#/grokking")
    _plotted(page, "#grok-curves")
    _plotted(page, "#grok-spectrum")
    assert "tiny" in page.inner_text("#grok-run")
    before = page.evaluate("document.querySelector('#grok-spectrum').data[0].y")
    label = page.inner_text("#grok-epoch")
    screenshot(page, shots, "grokking")
    page.eval_on_selector("#grok-slider", "s => { s.value = 1; s.dispatchEvent(new Event('input')); }")
    page.wait_for_function(f"document.querySelector('#grok-epoch').innerText !== {label!r}")
    page.wait_for_function("JSON.stringify(document.querySelector('#grok-spectrum').data[0].y) !== "
                           f"{repr(__import__('json').dumps(before))}", timeout=10_000)  # fmt: skip
    assert page.locator("#grok-neurons .grok-neuron").count() >= 1
    assert "checkpoint 2 of" in page.inner_text("#grok-epoch")
    screenshot(page, shots, "grokking-early")


def test_grokking_train_shows_progress(page, shots):
    page.goto(page.base + "/#/grokking")
    _plotted(page, "#grok-curves")
    page.click("#grok-train summary")
    page.fill("#grok-train-out", "browser-run")
    page.fill("#grok-train-epochs", "150")
    page.click("#grok-train-start")
    page.wait_for_function("document.querySelector('#grok-run').innerText.includes('browser-run')", timeout=30_000)
    page.wait_for_function("document.querySelector('#grok-run').value.endsWith('browser-run')", timeout=30_000)
    _plotted(page, "#grok-curves")


def test_trace_heatmap_and_cell_top10(page, shots):
    page.goto(page.base + "/#/circuits")
    page.wait_for_selector("#circ-fact option:nth-child(2)", state="attached")
    page.fill("#circ-prompt", "The capital of France is")
    page.fill("#circ-subject", "France")
    page.fill("#circ-trace-answer", " Paris")
    page.fill("#circ-window", "1")
    page.click("#circ-trace-run")
    _plotted(page, "#circ-trace-resid")
    assert "P(answer) clean" in page.inner_text("#circ-trace-status")
    # click the heatmap's top-right cell (last layer, last position): its top-10 appears
    box = page.locator("#circ-trace-resid .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 5, box["y"] + 5)
    page.wait_for_selector("#circ-cell-top table.top")
    assert page.locator("#circ-cell-top table.top tr").count() == 10
    assert "resid L2" in page.inner_text("#circ-cell-title")
    screenshot(page, shots, "circuits-trace")


def test_patch_heatmap_cell_and_dla(page, shots):
    page.goto(page.base + "/#/circuits")
    page.fill("#circ-clean", "The capital of France is")
    page.fill("#circ-corrupt", "The capital of Wikipedia is")
    page.fill("#circ-wrong", " reliability")
    page.click("#circ-patch-run")
    _plotted(page, "#circ-patch-resid_pre")
    box = page.locator("#circ-patch-mlp_out .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + 5, box["y"] + box["height"] - 5)  # layer 0, position 0
    page.wait_for_selector("#circ-cell-top table.top")
    assert "mlp_out L0 @ 0" in page.inner_text("#circ-cell-title")
    page.fill("#circ-dla-wrong", " reliability")
    page.click("#circ-dla-run")
    _plotted(page, "#circ-dla-bars")
    assert page.evaluate("document.querySelector('#circ-dla-bars').data[0].x.length") == 2 + 2 * 3
    screenshot(page, shots, "circuits-patch")


def test_toy_model_plot_appears(page, shots):
    page.goto(page.base + "/#/superposition")
    _plotted(page, "#sup-mem-bars")
    page.fill("#sup-steps", "500")
    page.click("#sup-run")
    page.wait_for_selector("#sup-geometry .sup-directions", timeout=20_000)
    _plotted(page, "#sup-norms")
    assert page.locator("#sup-geometry .sup-directions").count() == 4
    assert page.locator("#sup-wtw .sup-wtw").count() == 4
    assert "D*" in page.inner_text("#sup-table")
    page.fill("#sup-ortho-n", "300")
    page.fill("#sup-ortho-steps", "5")
    page.click("#sup-ortho-run")
    _plotted(page, "#sup-ortho-hist")
    assert "maxcos" in page.inner_text("#sup-ortho-table")
    screenshot(page, shots, "superposition")
