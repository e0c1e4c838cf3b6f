"""Shared pieces of the web workbench benchmarks: a real ``mechscope serve`` subprocess on a free port,
the 20-token prompt, and Chromium's launch flags."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from _common import ROOT, TEXT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(model: str = "gemma-3-270m", timeout: float = 300) -> Iterator[str]:
    """``mechscope serve`` in a subprocess (the model loads before it listens); yields its URL."""
    port = free_port()
    exe = Path(sys.executable).parent / "mechscope"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    proc = subprocess.Popen([str(exe), "serve", "--model", model, "--port", str(port), "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        if not line.startswith("{"):
            raise RuntimeError(f"mechscope serve did not start: {line}{proc.stderr.read()[-2000:]}")
        url = json.loads(line)["url"].rstrip("/")
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/api/info", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def prompt_text(tokenizer, n_tokens: int = 20, shift: int = 0) -> str:
    """Text that tokenises to exactly ``n_tokens`` tokens with BOS (a slice of the benchmark text)."""
    words = TEXT.split()[shift:]
    for k in range(1, len(words)):
        text = " ".join(words[:k])
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1
        if n == n_tokens:
            return text
        if n > n_tokens:
            break
    ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"][: n_tokens - 1]
    return tokenizer.decode(ids)
