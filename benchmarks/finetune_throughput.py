"""Fine-tune throughput on Gemma 3 270M: training tokens/s (forward + backward + optimiser step) on CPU.

Issue 14 asks for the fine-tune's throughput to be reported. Contenders, on the same model, the same
ocean-theme contexts (batch 4 × 64 tokens) and the same thread count, in alternating rounds:

* ``mechscope_default``: :func:`mechscope.diff.finetune.finetune` as ``mechscope finetune --theme ocean``
  runs it (LoRA r16 on every linear layer of the blocks, bf16 autocast where the CPU is fast at it);
* ``mechscope_full_fp32``: the same loop training the blocks in full, float32 (``--lora 0 --precision float32``);
* ``hf_plain`` (the baseline): a plain Hugging Face training step on the same batch, as one writes it
  without mechscope: ``loss = model(input_ids=x, labels=x).loss; loss.backward(); AdamW.step()``, the
  blocks trained in full, float32, embedding frozen.

Per-step seconds come from ``finetune``'s ``on_step`` callback (the first ``--warmup`` steps of each
call dropped) and from timing the plain loop the same way; medians over all rounds. The JSON line gives
tokens/s per contender and the ratios to the baseline.

    HF_HUB_OFFLINE=1 flock /tmp/mechscope-cpu.lock .venv/bin/python benchmarks/finetune_throughput.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import emit, median


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6, help="timed steps per contender per round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each call")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    import mechscope
    from mechscope.diff.finetune import batch_indices, finetune, resolve_precision, training_contexts
    from mechscope.diff.finetune_config import FinetuneConfig
    from mechscope.runtime import cpu_model

    torch.set_num_threads(args.threads)
    model = mechscope.load("gemma-3-270m", device="cpu")
    n_steps = args.warmup + args.steps
    configs = {
        "mechscope_default": FinetuneConfig(theme="ocean", steps=n_steps, docs=400),
        "mechscope_full_fp32": FinetuneConfig(theme="ocean", steps=n_steps, docs=400, lora=0, precision="float32"),
    }
    base_cfg = configs["mechscope_default"]
    contexts, _ = training_contexts(model, base_cfg)
    tokens_per_step = base_cfg.batch * base_cfg.seq_len
    times: dict[str, list[float]] = {name: [] for name in [*configs, "hf_plain"]}

    def run_mechscope(name: str, tmp: Path) -> None:
        stamps: list[float] = []
        t0 = time.perf_counter()
        finetune(model, configs[name], tmp / f"{name}-{len(times[name])}", progress=False,
                 on_step=lambda step, loss: stamps.append(time.perf_counter()))  # fmt: skip
        steps = [b - a for a, b in zip([t0, *stamps[:-1]], stamps)]
        times[name].extend(steps[args.warmup :])

    def run_plain() -> None:
        import copy

        hf = copy.deepcopy(model.hf).eval()
        for p in hf.parameters():
            p.requires_grad_(False)
        params = list(hf.get_submodule(model.adapter.layers).parameters())
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=3e-5)
        for step in range(n_steps):
            x = contexts[batch_indices(contexts.shape[0], base_cfg.batch, 0, step)]
            t0 = time.perf_counter()
            loss = hf(input_ids=x, labels=x, use_cache=False).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step >= args.warmup:
                times["hf_plain"].append(time.perf_counter() - t0)
        del hf, opt

    with tempfile.TemporaryDirectory(prefix="mechscope-ft-bench-") as tmp:
        order = [*configs, "hf_plain"]
        for r in range(args.rounds):
            for name in order[r % len(order) :] + order[: r % len(order)]:
                if name == "hf_plain":
                    run_plain()
                else:
                    run_mechscope(name, Path(tmp))
    tok_s = {name: tokens_per_step / median(ts) for name, ts in times.items()}
    emit("finetune_throughput", model="gemma-3-270m", cpu=cpu_model(), threads=args.threads,
         batch=base_cfg.batch, seq_len=base_cfg.seq_len, tokens_per_step=tokens_per_step,
         steps_timed=len(times["hf_plain"]), default_precision=resolve_precision(base_cfg, model.device),
         tokens_per_s={k: round(v, 1) for k, v in tok_s.items()},
         median_step_s={k: round(median(v), 3) for k, v in times.items()},
         ratio_default_vs_hf_plain=round(tok_s["mechscope_default"] / tok_s["hf_plain"], 3),
         ratio_full_fp32_vs_hf_plain=round(tok_s["mechscope_full_fp32"] / tok_s["hf_plain"], 3))  # fmt: skip


if __name__ == "__main__":
    main()
