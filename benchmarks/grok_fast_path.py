"""Per-step time of the grokking lab's exact fast path vs the plain reference formulation.

Issue 4 target: the fast path is >= 3x faster per training step than the reference formulation,
measured in the same run.

Both contenders do one full training step of the paper setup (p = 113, 3830 training pairs, seed 0
initialisation): forward, float64 cross-entropy on the last position, backward, AdamW update.

* fast: ``fast.fast_logits`` (tabulated attention/OV per (token, position), the MLP once per example,
  sparse mixing) - the path ``mechscope grok train`` uses;
* baseline: ``model.reference_forward`` (every position through attention, MLP and unembedding, as the
  paper's code does), last position read.

Steps are interleaved (one of each per round, order rotated) and the ratio is the median of the
per-round ratios, so load from other processes on a shared machine hits both alike.

    . .venv/bin/activate && python benchmarks/grok_fast_path.py [--repeats 15 --threads 2]
"""

from __future__ import annotations

import argparse

from _common import emit, interleaved, paired_ratio, summary, versions

TARGET = 3.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()

    import torch

    from mechscope.labs.grokking.config import GrokConfig
    from mechscope.labs.grokking.data import Dataset, tokens
    from mechscope.labs.grokking.fast import FastBatch, fast_logits
    from mechscope.labs.grokking.model import PARAM_NAMES, init_params, loss_and_accuracy, reference_forward
    from mechscope.labs.grokking.optim import OptimizerState, adamw_step

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = GrokConfig.paper()
    data = Dataset.build(cfg)
    idx = data.stacked_split(True)
    a, b, labels = data.a[idx], data.b[idx], data.labels[idx]
    batch = FastBatch.build(a, b, cfg.model.p, cfg.model.n_heads)
    toks = tokens(a.reshape(-1), b.reshape(-1), cfg.model.p).view(1, -1, 3)

    def make_step(logits_fn):
        params = {n: w.requires_grad_(True) for n, w in init_params(cfg.model, cfg.seeds).items()}
        state = OptimizerState.zeros_like(params)

        def step() -> None:
            loss, _ = loss_and_accuracy(logits_fn(params), labels)
            grads = torch.autograd.grad(loss.sum(), [params[n] for n in PARAM_NAMES])
            adamw_step(params, dict(zip(PARAM_NAMES, grads)), state, cfg)

        return step

    times = interleaved(
        {
            "fast": make_step(lambda w: fast_logits(w, batch)),
            "reference": make_step(lambda w: reference_forward(w, toks)[:, :, -1]),
        },
        repeats=args.repeats,
    )
    ratio = paired_ratio(times["reference"], times["fast"])
    emit(
        "grok_fast_path_speedup",
        ratio=round(ratio, 2),
        baseline="reference formulation (plain forward over all 3 positions), same run, interleaved",
        target=f">= {TARGET}x",
        passed=ratio >= TARGET,
        fast_ms=round(1000 * summary(times["fast"])["median_s"], 2),
        reference_ms=round(1000 * summary(times["reference"])["median_s"], 2),
        threads=torch.get_num_threads(),
        repeats=args.repeats,
        versions=versions("torch"),
    )


if __name__ == "__main__":
    main()
