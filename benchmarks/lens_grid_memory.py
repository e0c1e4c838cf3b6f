"""Peak extra memory of the full logit-lens grid (64 tokens × 19 rows × 262k vocab, top-10).

Issue 3 target: ≤ 1 GB above what the process held before the call. Each measurement is a fresh
subprocess: load Gemma 3 270M, run one plain forward pass of the same tokens (``model.hf(ids)``: the
weights are memory-mapped safetensors, and the first forward faults all 1.07 GB of them into RSS, which
is the model's memory, not the lens's), then sample RSS every 2 ms (``lens_common.PeakRSS``) while
``logit_lens`` runs, twice (the larger is reported). Baseline, same protocol: the naive grid that
materialises the [19 × 64 × 262144] logits (stacked ``final_norm(h) @ W_U.T``, ``log_softmax``,
``topk``), i.e. the 1.27 GB tensor chunking avoids. ``--cold`` skips the warm-up forward (diagnostic:
the first call then also counts the weights' page faults, for both contenders).

    . .venv/bin/activate && HF_HUB_OFFLINE=1 python benchmarks/lens_grid_memory.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys

from _common import emit, median, prompt_ids, run_json, versions
from lens_common import PeakRSS, full_logits_gb

TARGET_GB = 1.0


def child(which: str, cold: bool = False) -> None:
    import torch

    import mechscope
    from mechscope.lens import logit_lens
    from mechscope.lens.rows import collect, lens_rows

    model = mechscope.load("gemma-3-270m", device="cpu")
    ids = torch.tensor(prompt_ids(model.tokenizer))

    def naive():
        with torch.no_grad():
            _, resid = collect(model, ids, lens_rows(model.cfg.n_layers))
            logp = (model.apply_final_norm(resid) @ model.W_U).log_softmax(-1)  # [19, 64, 262144]
            return logp.topk(10, -1)

    fn = (lambda: logit_lens(model, ids, top_k=10)) if which == "mechscope" else naive
    if not cold:  # fault the memory-mapped weights in: a plain forward, no lens
        with torch.no_grad():
            model.hf(input_ids=ids[None], use_cache=False)
    extra = []
    for _ in range(2):
        with PeakRSS() as meter:
            fn()
        extra.append(meter.extra_gb)
    print(json.dumps({"which": which, "extra_gb": extra, "peak_extra_gb": max(extra)}))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="no warm-up forward before measuring (diagnostic)")
    ap.add_argument("--child", choices=["mechscope", "naive"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.cold)
        return {}
    runs: dict[str, list[dict]] = {"mechscope": [], "naive": []}
    for _ in range(args.repeats):
        for which in runs:
            runs[which].append(run_json([sys.executable, __file__, "--child", which, *(["--cold"] if args.cold else [])]))
            print(f"{which}: {runs[which][-1]['peak_extra_gb']:.3f} GB", file=sys.stderr)
    mech = round(median([r["peak_extra_gb"] for r in runs["mechscope"]]), 3)
    naive = round(median([r["peak_extra_gb"] for r in runs["naive"]]), 3)
    return emit(
        "lens_grid_memory_cold" if args.cold else "lens_grid_memory",
        values={"peak_extra_gb": mech, "rows": 19, "positions": 64, "vocab": 262144,
                "full_logits_gb": round(full_logits_gb(19, 64, 262144), 3)},  # fmt: skip
        baseline={"name": "naive grid materialising [19×64×262144] logits + log_softmax + topk", "peak_extra_gb": naive},
        ratio={"vs_naive": round(mech / naive, 3), "vs_budget": round(mech / TARGET_GB, 3)},
        target={"peak_extra_gb_max": TARGET_GB},
        passed={"peak_extra": mech <= TARGET_GB},
        runs=runs,
        protocol="cold: no warm-up forward (counts the weights' page faults)" if args.cold else
                 "warm: one plain forward before measuring (the mmapped weights are resident)",
        statistic="median over fresh subprocesses of the larger of two calls; RSS sampled every 2 ms",
        versions=versions("torch", "transformers", "mechscope"),
    )


if __name__ == "__main__":
    main()
