"""AtP*'s GradDrop against plain attribution patching on Gemma 3 270M: do magnitudes track the exact
effects, and does either miss a large effect? Two prompt pairs, every component (resid_pre, attn_out,
mlp_out × layer × position, and every head). A false negative is one of the 20 largest exact effects
(|exact| > 0.1) estimated below 0.05.

    . .venv/bin/activate && HF_HUB_OFFLINE=1 flock /tmp/mechscope-cpu.lock python benchmarks/circuits_graddrop.py
"""

from __future__ import annotations

import sys
import time

from _common import emit, versions
from circuits_atp import PAIRS, WHAT, flat


def main() -> None:
    import torch

    import mechscope
    from mechscope.attribution.atp import attribution_patching
    from mechscope.attribution.patching import activation_patching

    torch.set_num_threads(2)
    model = mechscope.load("gemma-3-270m", device="cpu")
    pr = lambda x, y: round(float(torch.corrcoef(torch.stack([x, y]))[0, 1]), 3)  # noqa: E731
    rows = []
    for clean, corrupt, a, w in PAIRS:
        exact = flat(activation_patching(model, clean, corrupt, a, w, what=WHAT))
        t = time.perf_counter()
        atp = flat(attribution_patching(model, clean, corrupt, a, w, what=WHAT))
        atp_s = time.perf_counter() - t
        t = time.perf_counter()
        gd = flat(attribution_patching(model, clean, corrupt, a, w, what=WHAT, grad_drop=True))
        gd_s = time.perf_counter() - t
        top = exact.abs().topk(20).indices
        miss = lambda est: int(((exact.abs()[top] > 0.1) & (est.abs()[top] < 0.05)).sum())  # noqa: E731
        rows.append({"clean": clean, "components": exact.numel(), "r_abs_atp": pr(exact.abs(), atp.abs()),
                     "r_abs_graddrop": pr(exact.abs(), gd), "false_negatives_top20_atp": miss(atp),
                     "false_negatives_top20_graddrop": miss(gd), "atp_s": round(atp_s, 2), "graddrop_s": round(gd_s, 2)})  # fmt: skip
    emit("circuits_graddrop", values=rows, versions=versions("torch", "transformers", "mechscope"))


if __name__ == "__main__":
    sys.exit(main())
