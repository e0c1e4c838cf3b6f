"""Vectorised toy models of superposition: 20 instances trained at once against one instance alone.

Issue 13 target: training 20 instances at once takes <= 3x the time of training one (same steps, same
batch per instance). For context, 20 separate one-instance runs would take ~20x. Interleaved rounds in
one process; the statistic is the median of per-round ratios.

    . .venv/bin/activate && flock /tmp/mechscope-cpu.lock python benchmarks/toy_vectorised.py
"""

from __future__ import annotations

import argparse

from _common import emit, interleaved, paired_ratio, summary, versions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--instances", type=int, default=20)
    args = ap.parse_args()

    import torch

    from mechscope.labs.superposition.config import ToyConfig
    from mechscope.labs.superposition.toy import train

    torch.set_num_threads(args.threads)
    one = ToyConfig(instances=1, steps=args.steps)
    many = ToyConfig(instances=args.instances, steps=args.steps)
    times = interleaved({"one": lambda: train(one), "many": lambda: train(many)}, args.repeats, warmup=1)
    ratio = paired_ratio(times["many"], times["one"])
    emit("toy_vectorised", values={"instances": args.instances, "steps": args.steps, "n": one.n, "m": one.m,
                                   "batch": one.batch},
         ratio={"many_vs_one": round(ratio, 3), "per_instance_speedup": round(args.instances / ratio, 2)},
         target={"many_vs_one_max": 3.0}, passed={"many_vs_one": ratio <= 3.0},
         times={k: summary(v) for k, v in times.items()}, repeats=args.repeats, threads=args.threads,
         statistic="median of per-round ratios (interleaved, same process)",
         versions={**versions("torch"), "mechscope": versions("mechscope")["mechscope"]})  # fmt: skip


if __name__ == "__main__":
    main()
