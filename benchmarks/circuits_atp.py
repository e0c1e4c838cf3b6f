"""Attribution patching on Gemma 3 270M: its cost against one forward + backward, and its agreement with
exact activation patching (Pearson r over every component).

Issue 12 target: attribution patching over every component (resid_pre, attn_out, mlp_out × layer ×
position, and every head) costs ≤ 3× one forward + backward. The baseline is the plain HF forward on
the corrupted prompt (all logits) plus ``backward`` of the logit difference, with the parameters'
gradients off (attribution needs activation gradients only). Interleaved round by round; ratio =
median of per-round ratios. Agreement: Pearson r between the estimate and the exact sweep over all
components (and per kind), on two prompt pairs.

    . .venv/bin/activate && HF_HUB_OFFLINE=1 flock /tmp/mechscope-cpu.lock python benchmarks/circuits_atp.py
"""

from __future__ import annotations

import argparse
import sys

from _common import emit, interleaved, paired_ratio, summary, versions

PAIRS = [
    ("The Eiffel Tower is located in the city of", "The Colosseum is located in the city of", " Paris", " Rome"),
    ("When Mary and John went to the store, John gave a drink to",
     "When Mary and John went to the store, Mary gave a drink to", " Mary", " John"),
]  # fmt: skip
WHAT = "resid,attn,mlp,heads"
TARGET = 3.0


def pearson(x, y) -> float:
    import torch

    ok = ~(x.isnan() | y.isnan())
    return float(torch.corrcoef(torch.stack([x[ok], y[ok]]))[0, 1])


def flat(res):
    import torch

    return torch.cat([v.flatten() for v in res.effects.values()] + [res.heads.flatten()])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    import mechscope
    from mechscope.attribution.atp import attribution_patching
    from mechscope.attribution.common import answer
    from mechscope.attribution.patching import activation_patching

    torch.set_num_threads(args.threads)
    model = mechscope.load("gemma-3-270m", device="cpu")
    for p in model.hf.parameters():
        p.requires_grad_(False)
    agreement = []
    for clean, corrupt, a, w in PAIRS:
        exact = activation_patching(model, clean, corrupt, a, w, what=WHAT)
        approx = attribution_patching(model, clean, corrupt, a, w, what=WHAT)
        x, y = flat(exact), flat(approx)
        per_kind = {k: round(pearson(exact.effects[k].flatten(), approx.effects[k].flatten()), 3) for k in exact.effects}
        per_kind["heads"] = round(pearson(exact.heads.flatten(), approx.heads.flatten()), 3)
        agreement.append({"clean": clean, "corrupt": corrupt, "components": int((~x.isnan()).sum()),
                          "pearson_r": round(pearson(x, y), 3), "per_kind": per_kind,
                          "exact_seconds": round(exact.seconds, 2), "attribution_seconds": round(approx.seconds, 2)})  # fmt: skip

    clean, corrupt, a, w = PAIRS[0]
    ans = answer(model, a, w)
    ids = model.to_tokens(corrupt)

    def fwd_bwd():
        with torch.enable_grad():
            emb = model.hf.get_input_embeddings()
            x = emb(ids.input_ids).detach().requires_grad_(True)  # something to take a gradient for
            lg = model.hf(inputs_embeds=x, attention_mask=ids.attention_mask, use_cache=False).logits
            (lg[0, -1, ans.answer_id] - lg[0, -1, ans.wrong_id]).backward()

    times = interleaved({"attribution": lambda: attribution_patching(model, clean, corrupt, a, w, what=WHAT),
                         "forward_backward": fwd_bwd}, args.repeats)  # fmt: skip
    ratio = paired_ratio(times["attribution"], times["forward_backward"])
    emit("circuits_atp", values={"agreement": agreement, "tokens": ids.input_ids.shape[1]},
         baseline={"name": "one plain HF forward (all logits) + backward of the logit difference, corrupted prompt"},
         times={k: summary(v) for k, v in times.items()}, ratio={"attribution_vs_forward_backward": round(ratio, 3)},
         target={"attribution_vs_forward_backward_max": TARGET}, passed={"cost": ratio <= TARGET},
         repeats=args.repeats, threads=args.threads, statistic="median of per-round ratios (interleaved, same process)",
         versions=versions("torch", "transformers", "mechscope"))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
