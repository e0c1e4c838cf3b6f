"""First paint of the workbench on localhost in headless Debian Chromium (Playwright, a fresh page each
time): ``first-contentful-paint`` from the Performance API, and the time until the home page shows the
model (``#model-info``, after ``/api/info``), against a bare static HTML page served from the same
machine (the baseline: Chromium's own floor). Interleaved, medians. Target (issue 15): ≤ 1 s.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/web_first_paint.py
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import tempfile
import threading
from pathlib import Path

from _common import emit, median, versions
from web_common import CHROMIUM, CHROMIUM_ARGS, serve

FCP = "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null"
READY = "() => performance.now()"


@contextlib.contextmanager
def bare_page():
    folder = tempfile.mkdtemp()
    Path(folder, "index.html").write_text("<!doctype html><title>x</title><p>hello</p>")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=folder)  # noqa: E731
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/index.html"
    finally:
        srv.shutdown()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    fcp = {"workbench": [], "bare": []}
    ready, lens_ready = [], []
    with serve() as url, bare_page() as bare, sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for i in range(args.repeats + 1):
            for name, target in (("workbench", url + "/"), ("bare", bare)) if i % 2 else (("bare", bare), ("workbench", url + "/")):
                page = ctx.new_page()
                page.goto(target)
                if name == "workbench":
                    page.wait_for_selector("#model-info")
                    t_ready = page.evaluate(READY)
                page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
                value = page.evaluate(FCP)
                if i:  # the first round warms the browser's caches
                    fcp[name].append(value / 1000)
                    if name == "workbench":
                        ready.append(t_ready / 1000)
                page.close()
            page = ctx.new_page()
            page.goto(url + "/#/lens")
            page.wait_for_selector("#lens-run")
            if i:
                lens_ready.append(page.evaluate(READY) / 1000)
            page.close()
        ctx.close()
    wb, base = median(fcp["workbench"]), median(fcp["bare"])
    return emit("web_first_paint", first_contentful_paint_s=round(wb, 4), bare_page_fcp_s=round(base, 4),
                ratio_over_bare=round(wb / base, 3), home_shows_model_s=round(median(ready), 4),
                lens_page_ready_s=round(median(lens_ready), 4), target_s=1.0, meets_target=wb <= 1.0,
                repeats=args.repeats, versions=versions("playwright", "fastapi", "uvicorn"))  # fmt: skip


if __name__ == "__main__":
    main()
