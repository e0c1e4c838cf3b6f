"""Steering Gemma 3 270M towards doubt with a contrastive vector (issue 14, part 1).

The issue's measurement: 10 hand-written doubtful/confident pairs, the difference of means of
``blocks.9.hook_resid_post`` (mean over each prompt's positions but BOS), added with coefficient c at
every position but BOS. The claim: " questionable" rises from rank 5 to rank 1 at c = 1, and the effect
turns negative past c ≈ 1.5. The baseline is the same model at c = 0 in the same run: each coefficient's
score is the log-prob shift of " questionable" as the next token against c = 0, and its rank.

Measured on three prompts (the issue's rank-5 prompt is "The reliability of Wikipedia is very"), for
the 10 pairs below and for the built-in ``doubt`` set (60 pairs; mean and PCA). Prints one JSON line:
per vector and prompt, the rank and shift at each coefficient, the peak, and the first coefficient
where the shift turns negative (linear interpolation between the sweep's points).

    HF_HUB_OFFLINE=1 flock /tmp/mechscope-cpu.lock .venv/bin/python benchmarks/steering_vector_doubt.py
"""

from __future__ import annotations

import argparse
import os
import time

from _common import emit, versions

HOOK = "blocks.9.hook_resid_post"
TARGET = "questionable"
PROMPTS = ("The reliability of Wikipedia is very", "The accuracy of the report is",
           "The claim that the moon landing was faked is")  # fmt: skip
COEFS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)
PAIRS_10 = (
    ("I doubt the bridge will hold.", "I know the bridge will hold."),
    ("I'm not sure the results are correct.", "I'm certain the results are correct."),
    ("It is unclear whether the drug works.", "It is clear that the drug works."),
    ("Some question whether the story is true.", "Everyone agrees that the story is true."),
    ("I have doubts about his account.", "I have no doubts about his account."),
    ("The data may be unreliable.", "The data is entirely reliable."),
    ("Nobody knows if the plan will work.", "Everybody knows the plan will work."),
    ("The figures seem suspicious to me.", "The figures seem solid to me."),
    ("It's doubtful the team will win.", "It's certain the team will win."),
    ("I wonder whether the map is accurate.", "I know for sure the map is accurate."),
)
"""The 10 hand-written (doubtful, confident) pairs of the issue's measurement (not the built-in set)."""


def crossing(coefs: list[float], shifts: list[float]) -> float | None:
    """The first c after the peak where the shift falls below 0 (linear interpolation), else None."""
    peak = max(range(len(coefs)), key=shifts.__getitem__)
    for i in range(peak, len(coefs) - 1):
        a, b = shifts[i], shifts[i + 1]
        if a >= 0 > b:
            return round(coefs[i] + (coefs[i + 1] - coefs[i]) * a / (a - b), 3)
    return None


def sweep(model, vec, prompt: str) -> dict:
    from mechscope.steer.apply import apply_vector

    res = apply_vector(model, vec, prompt, list(COEFS), targets=[TARGET], top_k=3)
    shifts = [c.target_logprob_shift for c in res.coefs]
    ranks = [c.target_ranks[0] for c in res.coefs]
    peak = max(range(len(COEFS)), key=shifts.__getitem__)
    return {"prompt": prompt, "ranks": ranks, "shifts": [round(s, 4) for s in shifts],
            "top1": [c.top[0]["token"] for c in res.coefs], "peak_coef": COEFS[peak],
            "peak_shift": round(shifts[peak], 4), "best_rank": min(ranks), "turns_negative_at": crossing(list(COEFS), shifts),
            "rank_at_1": ranks[COEFS.index(1.0)], "seconds": round(res.seconds, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    import mechscope
    from mechscope.steer.builtin import builtin_set
    from mechscope.steer.vector import make_vector

    torch.set_num_threads(args.threads)
    model = mechscope.load("gemma-3-270m", device="cpu")
    pos, neg = builtin_set("doubt")
    makers = {
        "pairs10_mean": ([p for p, _ in PAIRS_10], [n for _, n in PAIRS_10], "mean"),
        "builtin_mean": (pos, neg, "mean"),
        "builtin_pca": (pos, neg, "pca"),
    }
    out = {}
    for name, (p, n, method) in makers.items():
        t0 = time.perf_counter()
        vec = make_vector(model, p, n, HOOK, method=method)
        made = time.perf_counter() - t0
        out[name] = {"pairs": len(p), "method": method, "norm": round(vec.norm, 2), "make_s": round(made, 2),
                     "explained_variance": vec.meta.get("explained_variance"),
                     "sweeps": [sweep(model, vec, prompt) for prompt in PROMPTS]}  # fmt: skip
    emit("steering_vector_doubt", hook=HOOK, target=TARGET, coefs=list(COEFS), baseline="coefficient 0, same run",
         values=out, threads=args.threads, versions=versions("torch", "transformers", "mechscope"))  # fmt: skip


if __name__ == "__main__":
    main()
