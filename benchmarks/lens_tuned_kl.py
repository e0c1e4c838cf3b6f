"""Tuned lens vs logit lens on held-out text: mean KL(final ‖ row) per row, Gemma 3 270M.

Issue 3 target: the tuned lens (trained with ``mechscope lens train-tuned`` on ≥ 200k tokens of the
built-in corpus) has a lower mean KL than the logit lens at every row except the last (the output,
KL 0 for both). Held-out = the built-in corpus's held-out documents (never trained on), 128-token
contexts, every position but BOS, float32; baseline = the logit lens on the same positions, same run.

    . .venv/bin/activate && HF_HUB_OFFLINE=1 python benchmarks/lens_tuned_kl.py [--tokens 8192] [--lens-file DIR] \
        [--png docs/lens/tuned_kl.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import emit, versions


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=8192, help="held-out tokens to evaluate")
    ap.add_argument("--lens-file", type=Path, default=None, help="default: the model's default tuned-lens directory")
    ap.add_argument("--png", type=Path, default=None, help="also draw the per-row KL of both lenses (as eval-tuned --png)")
    args = ap.parse_args(argv)

    import mechscope
    from mechscope.data.corpus import CorpusConfig, corpus_contexts
    from mechscope.lens.evaluate import evaluate_lenses
    from mechscope.lens.tuned import default_lens_dir, load_tuned_lens

    model = mechscope.load("gemma-3-270m", device="cpu")
    lens = load_tuned_lens(args.lens_file or default_lens_dir(model), model)
    cfg = CorpusConfig(**{**lens.info["train"]["corpus"], "sources": tuple(lens.info["train"]["corpus"]["sources"])})
    contexts = corpus_contexts(model.tokenizer, cfg, "heldout", max_tokens=args.tokens)
    ev = evaluate_lenses(model, lens, contexts)
    trained = lens.info["result"]
    if args.png:
        from mechscope.viz.lens_kl import save_kl_png

        save_kl_png(ev.to_dict(), args.png, f"{model.name}: logit lens vs tuned lens (trained on {trained['tokens']:,} tokens)")
    per_row = {lb: {"logit_kl": round(lo, 4), "tuned_kl": round(t, 4), "ratio": round(t / lo, 4)}
               for lb, lo, t in zip(ev.labels, ev.logit_kl, ev.tuned_kl)}  # fmt: skip
    return emit(
        "lens_tuned_kl",
        values={"tuned_kl_mean_over_rows": round(sum(ev.tuned_kl) / len(ev.tuned_kl), 4), "per_row": per_row},
        baseline={"name": "logit lens, same held-out positions", "logit_kl_mean_over_rows":
                  round(sum(ev.logit_kl) / len(ev.logit_kl), 4)},  # fmt: skip
        ratio={"worst_row_tuned_vs_logit": max(r["ratio"] for r in per_row.values()),
               "mean_tuned_vs_logit": round(sum(ev.tuned_kl) / sum(ev.logit_kl), 4)},  # fmt: skip
        target={"tuned_below_logit_at_every_row_but_the_last": True, "train_tokens_min": 200_000},
        passed={"every_row": ev.tuned_better_everywhere, "train_tokens": trained["tokens"] >= 200_000},
        heldout={"positions": ev.tokens, "contexts": ev.contexts, "seconds": round(ev.seconds, 1)},
        training={k: v for k, v in trained.items() if k not in ("kl_history", "final_train_kl")} | {
            "config": lens.info["train"]},
        versions=versions("torch", "transformers", "mechscope"),
    )


if __name__ == "__main__":
    main()
