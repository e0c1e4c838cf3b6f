"""A full resid_pre layer × position activation-patching sweep on Gemma 3 270M: mechscope's batched
sweep vs the naive one-forward-per-patch baseline (and TransformerLens 4.3's ``patching`` module when
``benchmarks/envs/tl`` exists).

Issue 12 target: the sweep ≤ 0.5× TransformerLens 4.3's patching functions on the same prompt pair.
In this process, interleaved round by round on the same model:

* ``batched``: ``activation_patching(..., what="resid")`` — 18 × 10 = 180 patched runs, 32 rows per
  forward, each forward ending at the final norm and reading two unembedding columns;
* ``naive``: :func:`mechscope.attribution.patching.naive_patching` — one full forward (all logits) per
  patch with a bound ``Set`` intervention.

The TransformerLens column runs ``transformer_lens.patching.get_act_patch_resid_pre`` on a
``TransformerBridge`` in its own venv (``benchmarks/peers/circuits_patching_tl.py``), timing it against
its own plain HF forward in that process; we compare seconds (same machine, same threads).

    . .venv/bin/activate && HF_HUB_OFFLINE=1 flock /tmp/mechscope-cpu.lock python benchmarks/circuits_patching.py
"""

from __future__ import annotations

import argparse
import sys

from _common import ENVS, PEERS, emit, env_python, interleaved, model_dir, paired_ratio, run_json, summary, versions  # fmt: skip

CLEAN = "The Eiffel Tower is located in the city of"
CORRUPT = "The Colosseum is located in the city of"
ANSWER, WRONG = " Paris", " Rome"
TARGET_VS_TL = 0.5


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args(argv)

    import torch

    import mechscope
    from mechscope.attribution.patching import activation_patching, naive_patching

    torch.set_num_threads(args.threads)
    model = mechscope.load("gemma-3-270m", device="cpu")
    res = activation_patching(model, CLEAN, CORRUPT, ANSWER, WRONG, what="resid", batch_size=args.batch_size)
    ref = naive_patching(model, CLEAN, CORRUPT, ANSWER, WRONG)
    max_diff = float((res.effects["resid_pre"] - ref).abs().max())
    times = interleaved({
        "batched": lambda: activation_patching(model, CLEAN, CORRUPT, ANSWER, WRONG, what="resid", batch_size=args.batch_size),
        "naive": lambda: naive_patching(model, CLEAN, CORRUPT, ANSWER, WRONG),
    }, args.repeats, warmup=0)  # fmt: skip
    out = {"values": {"patches": int(res.effects["resid_pre"].numel()), "tokens": len(res.tokens),
                      "batch_size": args.batch_size, "forwards_batched": res.forwards,
                      "clean_logit_diff": round(res.clean_logit_diff, 4), "corrupt_logit_diff": round(res.corrupt_logit_diff, 4),
                      "max_abs_diff_vs_naive": max_diff},
           "times": {k: summary(v) for k, v in times.items()},
           "ratio": {"batched_vs_naive": round(paired_ratio(times["batched"], times["naive"]), 3)}}  # fmt: skip
    if not args.no_peers and (ENVS / "tl" / ".complete").is_file():
        tl = run_json([env_python("tl"), PEERS / "circuits_patching_tl.py", "--model-dir", model_dir(), "--clean", CLEAN,
                       "--corrupt", CORRUPT, "--answer", ANSWER, "--wrong", WRONG, "--repeats", str(args.repeats),
                       "--threads", str(args.threads)])  # fmt: skip
        ours = summary(times["batched"])["median_s"]
        out["peers"] = {"transformer_lens": tl}
        out["ratio"]["batched_vs_transformer_lens"] = round(ours / tl["sweep"]["median_s"], 3)
        out["target"] = {"batched_vs_transformer_lens_max": TARGET_VS_TL}
        out["passed"] = {"batched_vs_transformer_lens": out["ratio"]["batched_vs_transformer_lens"] <= TARGET_VS_TL}
        tl_grid = tl.get("max_abs_diff_vs_ours")
        if tl_grid is None and "effects" in tl:
            import torch as _t

            out["values"]["max_abs_diff_tl_vs_ours"] = float((_t.tensor(tl.pop("effects")) - res.effects["resid_pre"]).abs().max())
    elif not args.no_peers:
        out["peers"] = {"transformer_lens": "benchmarks/envs/tl missing: run `bash benchmarks/envs/make_envs.sh tl`"}
    emit("circuits_patching", **out, repeats=args.repeats, threads=args.threads,
         statistic="median seconds per full sweep; ratio = median of per-round ratios (interleaved, same process)",
         versions=versions("torch", "transformers", "mechscope"))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
