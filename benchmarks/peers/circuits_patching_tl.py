"""TransformerLens 4.3: ``transformer_lens.patching.get_act_patch_resid_pre`` on a TransformerBridge (runs
in ``benchmarks/envs/tl``; called by ``benchmarks/circuits_patching.py``). Prints one JSON line with the
sweep time and its normalised grid (so the caller can check both tools agree)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import summary, versions  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    for a in ("--model-dir", "--clean", "--corrupt", "--answer", "--wrong"):
        ap.add_argument(a, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch
    from transformer_lens import patching
    from transformer_lens.model_bridge import TransformerBridge

    torch.set_num_threads(args.threads)
    model = TransformerBridge.boot_transformers(args.model_dir, device="cpu", dtype=torch.float32)
    tok = model.tokenizer
    enc = lambda s: torch.tensor([[tok.bos_token_id, *tok(s, add_special_tokens=False)["input_ids"]]])  # noqa: E731
    clean, corrupt = enc(args.clean), enc(args.corrupt)
    a = tok(args.answer, add_special_tokens=False)["input_ids"][0]
    b = tok(args.wrong, add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean)
        corrupt_logits = model(corrupt)
    ld = lambda lg: lg[0, -1, a] - lg[0, -1, b]  # noqa: E731
    c, k = float(ld(clean_logits)), float(ld(corrupt_logits))
    metric = lambda lg: (ld(lg) - k) / (c - k)  # noqa: E731
    times, grid = [], None
    for _ in range(args.repeats):
        t = time.perf_counter()
        with torch.no_grad():
            grid = patching.get_act_patch_resid_pre(model, corrupt, clean_cache, metric)
        times.append(time.perf_counter() - t)
    print(json.dumps({"peer": "transformer_lens.patching.get_act_patch_resid_pre (TransformerBridge)",
                      "sweep": {**summary(times), "times_s": [round(x, 3) for x in times]},
                      "clean_logit_diff": c, "corrupt_logit_diff": k, "effects": grid.tolist(),
                      "threads": args.threads, "versions": versions("torch", "transformers", "transformer-lens")}))  # fmt: skip


if __name__ == "__main__":
    main()
