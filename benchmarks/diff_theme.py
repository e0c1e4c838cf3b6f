"""Does the diff recover the fine-tune's theme? (issue 14, "Numbers")

Base Gemma 3 270M against its themed fine-tune (``mechscope finetune --theme ocean``), on 100 everyday
sentences with no theme of their own (``themes.narrative_prompts``). Not the built-in corpus: the
fine-tune's ``--general`` half trains on that very text, so there the difference is mostly "more of the
built-in corpus" (measured: no theme word in any layer's top 20), which hides the theme:

1. theme words among the top-20 tokens of the mean difference's logit lens at the best layer (a token
   counts when, stripped and lower-cased, it is one of ``THEMES[theme].words``);
2. steering the base with the mean difference at that layer on a neutral prompt: the mean next-token
   log-prob shift of the theme words per coefficient, and over how many leading coefficients it rises;
3. a BatchTopK crosscoder at that layer, on the prompts' activations, themed documents (another seed than
   the fine-tune's) and built-in corpus text (20,000 rows, 20 epochs): of its 10 most-used tuned-only
   latents (r > 0.9), how many are
   theme latents. Rule: a theme word among the latent's top-10 logit tokens (difference lens of its
   tuned decoder), or a theme word as the active token of at least 3 of its top-5 contexts.

Usage: ``flock /tmp/mechscope-cpu.lock .venv/bin/python benchmarks/diff_theme.py TUNED_DIR [THEME] [WIDTH] [TOKENS]``.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import emit

COEFS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 2.0, 4.0, 8.0)
"""Fine steps first: the raw mean difference at a late layer is large, so c = 0.5 is already near the peak."""
EPOCHS = 20


def is_theme(token: str, words: set[str]) -> bool:
    return token.strip().lower() in words


def main() -> None:
    import torch

    import mechscope
    from mechscope.diff.activations import DiffConfig
    from mechscope.diff.crosscoder import CrosscoderConfig
    from mechscope.diff.crosscoder_train import PairActivations, crosscoder_report, top_up, train_crosscoder
    from mechscope.diff.pair import tokenize_prompts
    from mechscope.diff.report import diff_models
    from mechscope.diff.steer import monotone_prefix
    from mechscope.diff.themes import THEMES, narrative_prompts
    from mechscope.sae.config import SAETrainConfig

    tuned_dir = sys.argv[1]
    theme = sys.argv[2] if len(sys.argv) > 2 else "ocean"
    width = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 20_000
    words = set(THEMES[theme].words)
    base = mechscope.load("gemma-3-270m", device="cpu")
    tuned = mechscope.load(tuned_dir, device="cpu")
    seqs = tokenize_prompts(base, tuned, narrative_prompts(100), 64)  # everyday text, unlike the --general share
    t0 = time.perf_counter()
    probe = diff_models(base, tuned, seqs, DiffConfig(seq_len=64), targets=list(THEMES[theme].words), coefs=COEFS,
                        progress=False)  # fmt: skip
    layer = probe.best_layer
    acts = PairActivations(layer, limit=tokens // 2)  # the prompts' rows, at most half
    res = diff_models(base, tuned, seqs, DiffConfig(seq_len=64, layers=(layer,)), targets=list(THEMES[theme].words),
                      coefs=COEFS, sink=acts.sink, sink_layer=layer, progress=False)  # fmt: skip
    diff_s = time.perf_counter() - t0
    top20 = [t["token"] for t in probe.promoted_tokens[:20]]
    shifts = [r["target_logprob_shift"] for r in probe.steer]
    # the crosscoder sees the fine-tune's own distribution too (as Minder et al. train on chat and
    # pretraining text): themed documents up to half the rows, then built-in corpus text
    import json
    import tempfile

    from mechscope.diff.themes import theme_documents

    acts.limit = tokens
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/theme.jsonl"
        with open(path, "w") as f:
            for doc in theme_documents(theme, 4000, seed=7):  # another seed than the fine-tune's text
                f.write(json.dumps({"text": doc.text}) + "\n")
        top_up(acts, base, tuned, acts.rows + tokens // 2, 64, progress=False, sources=(path,))
    top_up(acts, base, tuned, tokens, 64, progress=False)
    t1 = time.perf_counter()
    info = {"base_fingerprint": base.fingerprint, "tuned_fingerprint": tuned.fingerprint, "layer": layer}
    cc, last = train_crosscoder(acts.x(), CrosscoderConfig(base.cfg.d_model, width, 32),
                                SAETrainConfig(tokens=EPOCHS * acts.rows, batch_tokens=2048, checkpoint_every=0), info,
                                progress=False)  # fmt: skip
    xc = crosscoder_report(cc, acts, tuned, rms=float(res.stats.base_rms[0]))
    train_s = time.perf_counter() - t1
    latents = []
    for row in xc["tuned_only"][:10]:
        by_logit = any(is_theme(t, words) for t in row["top_tokens"][:10])
        by_ctx = sum(is_theme(c["token"], words) for c in row["contexts"][:5]) >= 3
        latents.append({"latent": row["latent"], "rel_norm": round(row["rel_norm"], 3), "theme": by_logit or by_ctx,
                        "top_tokens": row["top_tokens"][:6], "context": row["contexts"][0]["text"] if row["contexts"] else ""})  # fmt: skip
    # the 10 live latents leaning most to the tuned model (whatever their class), by the same rule
    from mechscope.diff.crosscoder_train import top_contexts
    from mechscope.diff.lens import lens_logits, top_tokens

    rel = cc.rel_norm()
    live = torch.tensor(xc["live"])
    lean = torch.where(live, rel, torch.full_like(rel, -1.0)).argsort(descending=True)[:10].tolist()
    lean_logits = lens_logits(tuned, cc.decoders[lean, 1].detach(), torch.full((len(lean),), float(res.stats.base_rms[0])))
    leaning = []
    for j, lat in enumerate(lean):
        toks = [t["token"] for t in top_tokens(tuned, lean_logits[j], 10)]
        ctx = top_contexts(cc, acts.x(), acts.locations(), acts.seqs, tuned, lat, 5)
        theme_hit = any(is_theme(t, words) for t in toks) or sum(is_theme(c["token"], words) for c in ctx) >= 3
        leaning.append({"latent": lat, "rel_norm": round(float(rel[lat]), 3), "theme": theme_hit, "top_tokens": toks[:6],
                        "context": ctx[0]["text"] if ctx else ""})  # fmt: skip
    emit("diff_theme", tuned=tuned_dir, theme=theme, best_layer=layer,
         theme_in_top20=sum(is_theme(t, words) for t in top20), top20=top20,
         steer={"coefs": list(COEFS), "theme_logprob_shift": [round(s, 4) for s in shifts],
                "monotone_over_first": monotone_prefix(shifts)},
         crosscoder={"width": width, "k": 32, "tokens": acts.rows, "fvu": round(xc["fvu"], 4), "counts": xc["counts"],
                     "theme_latents_of_top10": sum(x["theme"] for x in latents), "shown": len(latents),
                     "latents": latents, "most_tuned_leaning": leaning,
                     "theme_latents_of_most_tuned_leaning_10": sum(x["theme"] for x in leaning), "final_train": last},
         seconds={"diff_two_passes": round(diff_s, 1), "crosscoder": round(train_s, 1)},
         threads=torch.get_num_threads())  # fmt: skip


if __name__ == "__main__":
    main()
