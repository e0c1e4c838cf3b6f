"""Activation-store harvest throughput on Gemma 3 270M against a plain HF forward truncated at the same layer.

Issue 11 target: harvest tokens/s ≥ 0.95× a plain Hugging Face forward truncated after the hooked block.
Contenders, interleaved round by round in one process over the same packed contexts:

* ``harvest``: :func:`mechscope.sae.store.harvest` into a fresh folder — streams the built-in corpus
  (tokenising and packing as it goes), runs ``model.collect`` (the forward stops after block 6), drops
  BOS, checks finiteness, writes sharded safetensors with checksums and the manifest;
* ``hf_truncated``: the Hugging Face model itself over the same contexts, 16 at a time, with its decoder
  layers cut to the first 7 (``model.model.layers`` sliced; no final norm, no LM head), returning the
  layer-6 output: the forward a harvest cannot avoid and nothing else.

    . .venv/bin/activate && HF_HUB_OFFLINE=1 flock /tmp/mechscope-cpu.lock python benchmarks/sae_harvest.py
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import emit, interleaved, paired_ratio, summary, versions

HOOK = "blocks.6.hook_resid_post"
TARGET = 0.95


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    import mechscope
    from mechscope.data.corpus import CorpusConfig, corpus_batches
    from mechscope.runtime import cpu_model
    from mechscope.sae.store import HarvestConfig, harvest

    torch.set_num_threads(args.threads)
    model = mechscope.load("gemma-3-270m", device="cpu")
    cfg = HarvestConfig(hooks=(HOOK,), tokens=args.tokens, corpus=CorpusConfig())
    contexts = torch.cat(list(corpus_batches(model.tokenizer, cfg.corpus, "train", 256, cfg.contexts * 128, progress=False)))
    hf = model.hf
    layers = hf.model.layers
    tmp = Path(tempfile.mkdtemp(prefix="mechscope-bench-harvest-"))

    def plain():
        hf.model.layers = layers[:7]
        try:
            with torch.no_grad():
                for s in range(0, contexts.shape[0], 16):
                    hf.model(input_ids=contexts[s:s + 16]).last_hidden_state  # noqa: B018  (layer 6 output, before norm?)
        finally:
            hf.model.layers = layers

    def ours():
        out = tmp / "store"
        shutil.rmtree(out, ignore_errors=True)
        harvest(model, cfg, out, progress=False)

    try:
        times = interleaved({"harvest": ours, "hf_truncated": plain}, repeats=args.repeats, warmup=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = contexts.numel()
    ratio = paired_ratio(times["hf_truncated"], times["harvest"])  # throughput ratio = time(plain) / time(ours)
    emit("sae_harvest_throughput", cpu=cpu_model(), hook=HOOK, tokens=n, threads=args.threads,
         harvest={**summary(times["harvest"]), "tokens_per_s": round(n / min(times["harvest"]))},
         hf_truncated={**summary(times["hf_truncated"]), "tokens_per_s": round(n / min(times["hf_truncated"]))},
         throughput_ratio=round(ratio, 3), target=TARGET, passed=ratio >= TARGET,
         versions=versions("torch", "transformers"))  # fmt: skip


if __name__ == "__main__":
    main()
