"""Streamed lens statistics against a float64 recomputation (64 tokens, the 18 streamed rows of Gemma 3 270M).

For every (row, position) the logits are recomputed in float64 over the whole vocabulary from the same
normed residuals and weights; reported: max abs error of the top-10 probabilities (same ids required),
entropy, KL to the output distribution, next-token probability, and the cells whose next-token rank
differs (with the float64 logit gap to the nearest competitor, to tell rounding ties from errors).

    . .venv/bin/activate && HF_HUB_OFFLINE=1 python benchmarks/lens_accuracy.py
"""

from __future__ import annotations

import argparse

import torch

from _common import emit, prompt_ids, versions


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    import mechscope
    from mechscope.lens.rows import collect, lens_rows
    from mechscope.lens.stream import Final, Unembedding, stream_stats

    model = mechscope.load("gemma-3-270m", device="cpu")
    ids = torch.tensor(prompt_ids(model.tokenizer))
    with torch.no_grad():
        final_logits, resid = collect(model, ids, lens_rows(model.cfg.n_layers))
        normed = model.apply_final_norm(resid[:-1]).float()
    unembed = Unembedding(model)
    track = torch.cat([ids[1:], ids.new_zeros(1)])[:, None]
    final = Final.of(final_logits.float())
    stats = stream_stats(unembed, normed, final, 10, track)
    w64 = unembed.weight.double()
    logp_f = final_logits.double().log_softmax(-1)
    err = {"top10_prob": 0.0, "entropy": 0.0, "kl": 0.0, "next_prob": 0.0}
    top_ids_differ, rank_cells, rank_ties = 0, 0, 0
    for r in range(normed.shape[0]):
        with torch.no_grad():
            logits = normed[r].double() @ w64.T  # [pos, vocab] (Gemma 3: no bias, no softcap)
        logp = logits.log_softmax(-1)
        top = logp.topk(10, -1)
        top_ids_differ += int((stats.top_ids[r] != top.indices).any(-1).sum())
        err["top10_prob"] = max(err["top10_prob"], float((stats.top_probs[r].double() - top.values.exp()).abs().max()))
        ent = -(logp.exp() * logp).sum(-1)
        err["entropy"] = max(err["entropy"], float((stats.entropy[r].double() - ent).abs().max()))
        kl = (logp_f.exp() * (logp_f - logp)).sum(-1)
        err["kl"] = max(err["kl"], float(((stats.kl[r].double() - kl) / kl.abs().clamp_min(1.0)).abs().max()))
        nxt = logp[:-1].gather(-1, ids[1:, None])[:, 0]
        err["next_prob"] = max(err["next_prob"], float((stats.track_probs[r, :-1, 0].double() - nxt.exp()).abs().max()))
        ranks = 1 + (logp[:-1] > nxt[:, None]).sum(-1)
        for p in torch.nonzero(ranks != stats.track_ranks[r, :-1, 0])[:, 0].tolist():
            rank_cells += 1
            gap = (logits[p] - logits[p, ids[p + 1]]).abs()
            gap[ids[p + 1]] = float("inf")
            rank_ties += int(float(gap.min()) < 1e-4)  # a competitor within float32 rounding of the token
        del logits, logp
    return emit(
        "lens_accuracy",
        values={"max_abs_error": {k: float(f"{v:.3g}") for k, v in err.items()}, "kl_error": "relative to max(1, |KL|)",
                "cells_with_other_top10_ids": top_ids_differ, "cells_with_other_next_rank": rank_cells,
                "of_which_rounding_ties": rank_ties, "cells": normed.shape[0] * normed.shape[1]},
        baseline={"name": "float64 recomputation over the whole vocabulary"},
        versions=versions("torch", "mechscope"),
    )


if __name__ == "__main__":
    main()
