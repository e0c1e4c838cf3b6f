"""TransformerLens 4.x's logit-lens recipe on the full grid: time and peak extra memory (a peer helper).

Runs in ``benchmarks/envs/tl`` (called by ``benchmarks/lens_vs_transformerlens.py``); prints one JSON
line. The recipe, as TransformerLens documents it for a logit lens over every layer and position:
``run_with_cache`` → ``cache.accumulated_resid(apply_ln=True)`` (19 × 64 × 640) → ``unembed``
(19 × 64 × 262144 logits) → ``log_softmax`` → ``topk(10)``. ``--compat`` first calls
``enable_compatibility_mode()`` (HookedTransformer numerics), the usual setup for this recipe.
Also tried: the one-call ``cache.logit_lens(positions=None, top_k=10)`` where this version has it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lens_common import PeakRSS  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--ids", required=True, help="JSON list of token ids")
    ap.add_argument("--compat", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from transformer_lens.model_bridge import TransformerBridge

    if args.threads:
        torch.set_num_threads(args.threads)
    bridge = TransformerBridge.boot_transformers(args.model_dir, device="cpu", dtype=torch.float32)
    if args.compat:
        bridge.enable_compatibility_mode()
    ids = torch.tensor([json.loads(args.ids)])
    with torch.no_grad():  # one plain forward first, as mechscope's side does: weights resident before measuring
        bridge(ids)

    def recipe():
        with torch.no_grad():
            logits, cache = bridge.run_with_cache(ids)
            accum = cache.accumulated_resid(apply_ln=True)  # [19, 1, 64, d_model]
            lens_logits = bridge.unembed(accum[:, 0])  # [19, 64, vocab]
            top = lens_logits.log_softmax(-1).topk(10, -1)
            return logits, lens_logits, top

    def one_call():
        with torch.no_grad():
            _, cache = bridge.run_with_cache(ids)
            return cache.logit_lens(positions=None, top_k=10)

    out = {"peer": "transformer_lens.TransformerBridge" + (" (compatibility mode)" if args.compat else ""),
           "threads": torch.get_num_threads()}  # fmt: skip
    for name, fn in (("recipe", recipe), ("logit_lens_call", one_call)):
        try:
            with PeakRSS() as meter:
                result = fn()
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            out[name] = {"median_s": round(statistics.median(times), 3), "times_s": [round(x, 3) for x in times],
                         "peak_extra_gb": round(meter.extra_gb, 3)}  # fmt: skip
            if name == "recipe":
                logits, lens_logits, _ = result
                out[name]["rows"] = int(lens_logits.shape[0])
                # does the last row reproduce the model output? (compat mode centres logits, so compare log-probs)
                diff = (lens_logits[-1].log_softmax(-1) - logits[0].log_softmax(-1)).abs().max()
                out[name]["last_row_max_abs_logprob_diff"] = float(diff)
            del result
        except Exception as exc:  # a missing API in this version is a finding, not a crash
            out[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    from importlib.metadata import version

    out["versions"] = {d: version(d) for d in ("torch", "transformers", "transformer-lens")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
