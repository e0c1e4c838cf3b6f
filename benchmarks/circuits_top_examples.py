"""Top-examples scan throughput on Gemma 3 270M against a truncated forward over the same contexts.

Issue 12 target: top examples at one hook run at ≥ 0.9× a truncated forward's tokens/s. Contenders,
interleaved round by round in one process:

* ``scan``: :func:`mechscope.attribution.top_examples.scan` — streams the built-in corpus (tokenising
  and packing as it goes), runs each batch to the hook (``model.collect``), and updates the running
  top-k and bottom-k of all 2,048 neurons with their per-token activations;
* ``forward``: ``model.collect(batch, [hook])`` over the same contexts, already packed (the forward that
  the scan cannot avoid, nothing else).

The issue asks for 1M corpus tokens; on this shared 2-core CPU that is ~11 min per contender, so the
ratio is measured on ``--tokens`` (default 32,768) and tokens/s is reported per contender; the per-batch
work is the same at any corpus size (the running tables are ``[k, unit]``), so the ratio carries over.

    . .venv/bin/activate && HF_HUB_OFFLINE=1 flock /tmp/mechscope-cpu.lock python benchmarks/circuits_top_examples.py
"""

from __future__ import annotations

import argparse
import sys

from _common import emit, interleaved, paired_ratio, summary, versions

HOOK = "blocks.9.mlp.hook_post"
TARGET = 0.9


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    import mechscope
    from mechscope.attribution.top_examples import TopExamplesConfig, scan
    from mechscope.data.corpus import corpus_batches

    torch.set_num_threads(args.threads)
    model = mechscope.load("gemma-3-270m", device="cpu")
    cfg = TopExamplesConfig(tokens=args.tokens)
    batches = list(corpus_batches(model.tokenizer, cfg.corpus, "all", cfg.batch_size, cfg.tokens, progress=False))
    n_tokens = sum(b.numel() for b in batches)

    def forward():
        with torch.no_grad():
            for b in batches:
                model.collect(b, [HOOK])

    times = interleaved({"scan": lambda: scan(model, HOOK, cfg), "forward": forward}, args.repeats, warmup=1)
    ratio = paired_ratio(times["forward"], times["scan"])  # tokens/s of scan over tokens/s of forward
    emit("circuits_top_examples", values={"hook": HOOK, "tokens": n_tokens, "units": model.cfg.d_mlp, "k": cfg.k,
                                          "seq_len": cfg.corpus.seq_len, "batch_size": cfg.batch_size,
                                          "scan_tokens_per_s": round(n_tokens / summary(times["scan"])["median_s"]),
                                          "forward_tokens_per_s": round(n_tokens / summary(times["forward"])["median_s"])},
         baseline={"name": "model.collect(batch, [hook]) over the same packed contexts (truncated forward only)"},
         times={k: summary(v) for k, v in times.items()}, ratio={"scan_vs_forward_tokens_per_s": round(ratio, 3)},
         target={"scan_vs_forward_min": TARGET}, passed={"throughput": ratio >= TARGET}, repeats=args.repeats,
         threads=args.threads, statistic="median of per-round ratios (interleaved, same process)",
         versions=versions("torch", "transformers", "mechscope"))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
