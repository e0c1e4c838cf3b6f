"""20 concurrent POST /api/lens requests (20 different ~20-token prompts) against a real ``mechscope serve``
on Gemma 3 270M: all answered, each identical to its sequential answer; throughput and p95 latency,
against the same 20 requests sent one after another (the baseline; the model lock serialises the work,
so concurrency should cost nothing and gain nothing on the CPU).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/web_concurrent_lens.py
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from _common import emit, median, versions
from web_common import prompt_text, serve


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    import httpx
    from transformers import AutoTokenizer

    from _common import model_dir

    tok = AutoTokenizer.from_pretrained(model_dir())
    prompts = [prompt_text(tok, 20, shift=i) for i in range(args.requests)]
    with serve() as url:
        def one(p):
            with httpx.Client(base_url=url, timeout=300) as c:
                t0 = time.perf_counter()
                r = c.post("/api/lens", json={"prompt": p})
                return r.status_code, r.content, time.perf_counter() - t0

        one(prompts[0])  # warm-up
        sequential, seq_walls, conc_walls, latencies, identical, answered = None, [], [], [], True, 0
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            seq = [one(p) for p in prompts]
            seq_walls.append(time.perf_counter() - t0)
            sequential = sequential or [s[1] for s in seq]
            identical &= [s[1] for s in seq] == sequential
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.requests) as pool:
                conc = list(pool.map(one, prompts))
            conc_walls.append(time.perf_counter() - t0)
            answered += sum(code == 200 for code, _, _ in conc)
            identical &= [c[1] for c in conc] == sequential
            latencies += [c[2] for c in conc]
    n = args.requests
    return emit("web_concurrent_lens", requests=n, rounds=args.rounds, all_answered=answered == n * args.rounds,
                identical_to_sequential=identical,
                concurrent={"throughput_rps": round(n / median(conc_walls), 3), "p50_s": round(pct(latencies, 0.5), 3),
                            "p95_s": round(pct(latencies, 0.95), 3), "max_s": round(max(latencies), 3)},
                sequential={"throughput_rps": round(n / median(seq_walls), 3)},
                ratio_concurrent_over_sequential_throughput=round(median(seq_walls) / median(conc_walls), 3),
                versions=versions("torch", "fastapi", "uvicorn"))  # fmt: skip


if __name__ == "__main__":
    main()
