"""Model diffing time: ``diff_models`` (both models' per-layer differences, the difference lens, the
steering sweep) over 100 prompts of 64 tokens, against the two plain Hugging Face forwards it needs
(``model.hf(input_ids, attention_mask)`` of base and tuned, logits included), same batches, same run.
Also against the same two forwards without the LM head (``model.hf.base_model``): Gemma's 262k-token
unembedding is most of a plain forward, and the diff never computes it.

Usage: ``flock /tmp/mechscope-cpu.lock .venv/bin/python benchmarks/diff_time.py TUNED_DIR [BASE]``.
Prints one JSON line; the target is ratio ≤ 2.2 (issue 14).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from _common import emit, interleaved, paired_ratio, summary

N_PROMPTS, SEQ, BATCH, REPEATS = 100, 64, 16, 3


def main() -> None:
    import mechscope
    from mechscope.diff.activations import DiffConfig
    from mechscope.diff.pair import batches, builtin_prompts, pad_id
    from mechscope.diff.report import diff_models

    tuned_dir = sys.argv[1]
    base = mechscope.load(sys.argv[2] if len(sys.argv) > 2 else "gemma-3-270m", device="cpu")
    tuned = mechscope.load(tuned_dir, device="cpu")
    seqs = builtin_prompts(base, N_PROMPTS, SEQ)
    cfg = DiffConfig(seq_len=SEQ, batch_size=BATCH)
    assert len(seqs) == N_PROMPTS and all(len(s) == SEQ for s in seqs)

    def plain():
        with torch.no_grad():
            for m in (base, tuned):
                for b in batches(seqs, pad_id(base), BATCH):
                    m.hf(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)

    def body():  # the same forwards without the LM head (the 262k-token unembedding): the stricter baseline
        with torch.no_grad():
            for m in (base, tuned):
                for b in batches(seqs, pad_id(base), BATCH):
                    m.hf.base_model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)

    def diff():
        diff_models(base, tuned, seqs, cfg, targets=["ocean"], progress=False)

    times = interleaved({"plain": plain, "body": body, "diff": diff}, REPEATS, warmup=0)  # runs of a minute: no warm-up round
    emit("diff_time", ratio=round(paired_ratio(times["diff"], times["plain"]), 3), target=2.2,
         ratio_vs_no_head=round(paired_ratio(times["diff"], times["body"]), 3), plain_no_head=summary(times["body"]),
         diff=summary(times["diff"]), plain_two_forwards=summary(times["plain"]), prompts=N_PROMPTS, seq_len=SEQ,
         batch=BATCH, tuned=tuned_dir, threads=torch.get_num_threads())  # fmt: skip


if __name__ == "__main__":
    main()
