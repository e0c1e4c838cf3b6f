"""The Lens page's request: POST /api/lens for a 20-token prompt on Gemma 3 270M through HTTP (a real
``mechscope serve`` subprocess), against the same library call in-process (``logit_lens(...).to_dict()``),
interleaved, medians. Target (issue 15): ≤ 1.5 s on 2 CPU cores.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/web_lens_latency.py
"""

from __future__ import annotations

import argparse

from _common import emit, interleaved, paired_ratio, summary, versions
from web_common import prompt_text, serve


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    import httpx
    import torch

    import mechscope
    from mechscope.lens.logit import logit_lens

    torch.set_num_threads(2)
    model = mechscope.load("gemma-3-270m", device="cpu")
    prompt = prompt_text(model.tokenizer, 20)
    n_tokens = len(model.to_str_tokens(prompt))
    with serve() as url, httpx.Client(base_url=url, timeout=60) as client:
        def http():
            r = client.post("/api/lens", json={"prompt": prompt})
            r.raise_for_status()
            return r.content

        times = interleaved({"http": http, "library": lambda: logit_lens(model, prompt).to_dict()}, args.repeats)
        size = len(http())
    http_s = summary(times["http"])
    return emit("web_lens_latency", prompt_tokens=n_tokens, http=http_s, library=summary(times["library"]),
                ratio_http_over_library=round(paired_ratio(times["http"], times["library"]), 3),
                target_s=1.5, meets_target=http_s["median_s"] <= 1.5, response_bytes=size, repeats=args.repeats,
                versions=versions("torch", "fastapi", "uvicorn"))  # fmt: skip


if __name__ == "__main__":
    main()
