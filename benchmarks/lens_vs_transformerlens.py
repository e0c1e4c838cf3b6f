"""Full logit-lens grid (64 tokens, 19 rows, top-10): mechscope vs TransformerLens' recipe.

TransformerLens 4.3 (``benchmarks/envs/tl``, see ``lens_peer_transformerlens.py``): ``run_with_cache``
→ ``accumulated_resid(apply_ln=True)`` → ``unembed`` → ``log_softmax`` → ``topk``, raw bridge and
compatibility mode. mechscope: ``logit_lens(model, ids, top_k=10)`` (which also computes entropy, KL to
the output and next-token ranks for every cell). Each side runs in its own fresh process in the same run,
same token ids, same thread count. Each side first runs one plain forward of the same tokens (so the
weights are resident: mechscope memory-maps them, and the first forward would otherwise count their
1.07 GB of page faults as lens memory); time = median of ``--repeats`` calls after one measured call,
memory = extra RSS over that first call (sampled every 2 ms).

    . .venv/bin/activate && HF_HUB_OFFLINE=1 python benchmarks/lens_vs_transformerlens.py [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from _common import emit, env_python, model_dir, prompt_ids, run_json, versions
from lens_common import PeakRSS


def child(repeats: int, threads: int) -> None:
    import torch

    import mechscope
    from mechscope.lens import logit_lens

    if threads:
        torch.set_num_threads(threads)
    model = mechscope.load("gemma-3-270m", device="cpu")
    ids = torch.tensor(prompt_ids(model.tokenizer))
    with torch.no_grad():  # weights resident before measuring (as the peer does)
        model.hf(input_ids=ids[None], use_cache=False)
    with PeakRSS() as meter:
        logit_lens(model, ids, top_k=10)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        logit_lens(model, ids, top_k=10)
        times.append(time.perf_counter() - t)
    print(json.dumps({"median_s": round(statistics.median(times), 3), "times_s": [round(x, 3) for x in times],
                      "peak_extra_gb": round(meter.extra_gb, 3), "threads": torch.get_num_threads()}))  # fmt: skip


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.repeats, args.threads)
        return {}
    from transformers import AutoTokenizer

    ids = prompt_ids(AutoTokenizer.from_pretrained(model_dir()))
    common = ["--repeats", str(args.repeats), "--threads", str(args.threads)]
    ours = run_json([sys.executable, __file__, "--child", *common])
    print(f"mechscope: {ours}", file=sys.stderr)
    peer_cmd = [env_python("tl"), __file__.replace("lens_vs_transformerlens.py", "lens_peer_transformerlens.py"),
                "--model-dir", str(model_dir()), "--ids", json.dumps(ids), *common]  # fmt: skip
    peers = {}
    for name, extra in (("transformer_lens", []), ("transformer_lens_compat", ["--compat"])):
        try:
            peers[name] = run_json(peer_cmd + extra, timeout=3600)
        except (RuntimeError, SystemExit) as exc:
            peers[name] = {"error": str(exc)}
        print(f"{name}: {peers[name]}", file=sys.stderr)
    ratio = {}
    for name, p in peers.items():
        rec = p.get("recipe", {})
        if "median_s" in rec:
            ratio[f"time_vs_{name}"] = round(ours["median_s"] / rec["median_s"], 3)
            ratio[f"memory_vs_{name}"] = round(ours["peak_extra_gb"] / max(rec["peak_extra_gb"], 1e-9), 3)
    return emit(
        "lens_vs_transformerlens",
        values={"mechscope_s": ours["median_s"], "mechscope_peak_extra_gb": ours["peak_extra_gb"]},
        baseline={"name": "TransformerLens 4.3 recipe: run_with_cache → accumulated_resid(apply_ln=True) → unembed "
                          "→ log_softmax → topk(10)",
                  **{name: p.get("recipe", p) for name, p in peers.items()}},  # fmt: skip
        ratio=ratio,
        ours=ours,
        peers=peers,
        tokens=len(ids),
        statistic="median seconds per call (fresh process per tool, same run); extra RSS over the first call",
        versions=versions("torch", "transformers", "mechscope"),
    )


if __name__ == "__main__":
    main()
