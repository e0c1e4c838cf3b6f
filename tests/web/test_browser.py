"""End to end in real headless Debian Chromium (Playwright), against a real uvicorn server on a free port.

Screenshots go to pytest's tmp dir and, when ``MECHSCOPE_SCREENSHOTS`` is set, are copied there.
Skipped (with the reason) only where /usr/bin/chromium is missing; `.ci/run` installs it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)")  # fmt: skip
pytest.importorskip("playwright", reason="playwright is in the test extra (make install)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
                                                    viewport={"width": 1400, "height": 1000})  # fmt: skip
        yield ctx
        ctx.close()


@pytest.fixture
def page(browser, live):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.base = live.url
    yield page
    page.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


def screenshot(page, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("MECHSCOPE_SCREENSHOTS"):
        dest = Path(os.environ["MECHSCOPE_SCREENSHOTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / path.name)
    return path


def test_home_lists_pages_and_model(page, shots, tiny_gemma):
    page.goto(page.base + "/")
    page.wait_for_selector("#model-info")
    assert tiny_gemma.name in page.inner_text("#model-info")
    from mechscope.web.pages import PAGES

    nav = page.locator("#nav a").all_inner_texts()
    assert nav == [p.title for p in PAGES] and nav[:3] == ["Home", "Lens", "Intervene"]
    assert page.locator(".cards .panel").count() == len(PAGES) - 1
    screenshot(page, shots, "home")


def test_lens_grid_hover_and_pin(page, shots, tiny_gemma):
    from mechscope.lens.logit import logit_lens

    page.goto(page.base + "/#/lens")
    page.fill("#lens-prompt", "The capital of France is Paris")
    page.click("#lens-run")
    page.wait_for_selector("#lens-grid td")
    res = logit_lens(tiny_gemma, "The capital of France is Paris")
    assert page.locator("#lens-grid tr").count() == res.n_rows + 1
    assert page.locator("#lens-grid td").count() == res.n_rows * res.n_pos
    # hover the embedding row's cell at position 2: the side panel shows that cell's top-10
    cell = page.locator('#lens-grid td[data-row="0"][data-pos="2"]')
    cell.hover()
    panel = page.locator("#lens-cell table.top tr")
    assert panel.count() == 10
    first = panel.first.locator("td.tok").inner_text()
    assert first == res.top(0, 2)[0][0].replace(" ", "␣")
    page.wait_for_selector("#lens-bars .main-svg")
    page.wait_for_selector("#lens-vectors .main-svg")
    # click pins the position: the next-token chart follows it
    cell.click()
    page.wait_for_function("document.querySelector('#lens-bars .gtitle') && "
                           "document.querySelector('#lens-bars .gtitle').textContent.includes('position 2')")  # fmt: skip
    page.select_option("#lens-color", "kl")
    assert "KL" in page.inner_text("#lens-legend")
    screenshot(page, shots, "lens")


def test_lens_error_is_shown(page):
    page.goto(page.base + "/#/lens")
    page.fill("#lens-prompt", "")
    page.click("#lens-run")
    page.wait_for_selector(".error")
    assert "empty" in page.inner_text(".error")


def test_intervention_changes_the_answer(page, shots):
    page.goto(page.base + "/#/intervene")
    page.wait_for_selector("#iv-hook option", state="attached")
    page.fill("#iv-prompt", "The capital of France is")
    page.select_option("#iv-hook", "blocks.2.hook_resid_post")
    page.select_option("#iv-mode", "add")
    page.fill("#iv-value", "3")
    page.fill("#iv-positions", "-1")
    page.click("#iv-add")
    edits = page.input_value("#iv-json")
    assert '"kind":"add"' in edits and '"positions":[-1]' in edits and '"scale":3' in edits
    page.fill("#iv-generate", "6")
    page.click("#iv-run")
    page.wait_for_selector("#iv-after table.top")
    before = page.locator("#iv-before table.top").inner_text()
    after = page.locator("#iv-after table.top").inner_text()
    assert before != after
    assert page.locator("#iv-before .continuation").count() == 1 and page.locator("#iv-after .continuation").count() == 1
    # save the list as JSON, clear it, load it back
    with page.expect_download() as dl:
        page.click("#iv-save")
    saved = Path(dl.value.path()).read_text()
    page.click("#iv-clear")
    assert page.input_value("#iv-json") == "[]"
    page.set_input_files("#iv-load", files=[{"name": "edits.json", "mimeType": "application/json", "buffer": saved.encode()}])
    page.wait_for_function("document.querySelector('#iv-json').value.includes('\"kind\":\"add\"')")
    screenshot(page, shots, "intervene")


def test_intervention_error_is_shown(page):
    page.goto(page.base + "/#/intervene")
    page.wait_for_selector("#iv-hook option", state="attached")
    page.fill("#iv-json", '[{"kind": "zero", "hook": "blocks.7.hook_resid_post"}]')
    page.click("#iv-run")
    page.wait_for_selector(".error")
    assert "out of range" in page.inner_text(".error")
