"""SAE training throughput and quality on Gemma 3 270M against SAELens and sparsify, same tokens.

Issue 11 targets: training tokens/s ≥ 2× the faster peer, end to end from the model and from a store
(from a store: ≥ 2× the peers' SAE step); quality at matched L0 (TopK, width 4096, k 32, layer 6
resid_post, the same tokens): held-out FVU no worse than either peer, dead latents ≤ 5 %.

Runs, one after another on the same inputs (``benchmarks/peers/sae_data.py`` writes them: the first
``--tokens`` of the built-in corpus's train split as 128-token contexts, 64 held-out contexts, and the
layer-6 activations of the first training contexts for the step-only rates):

* ``mechscope_e2e``: :func:`mechscope.sae.train.train_saes` on :class:`ModelSource` over those contexts,
  16 per forward (2,032 non-BOS rows per step; the forward stops after block 6);
* ``mechscope_e2e_bf16_forward``: the same with the model's matmuls under bf16 autocast (AMX here);
* ``mechscope_store``: the same training from an activation store of those contexts (harvest not timed);
* ``mechscope_step`` / ``mechscope_step_bf16``: the SAE step alone on the replayed activations
  (:class:`TensorSource`), float32 and with bf16 latent selection;
* peers: ``benchmarks/peers/sae_sparsify.py`` and ``sae_saelens.py`` in their envs (see README).

Tokens/s counts LM tokens (contexts × 128, BOS included) for end-to-end runs, as the peers do, and
activation rows for step-only runs. FVU and dead fraction are measured on the same 64 held-out contexts
(position 0 dropped) for every contender.

    . .venv/bin/activate && HF_HUB_OFFLINE=1 flock /tmp/mechscope-cpu.lock python benchmarks/sae_train_throughput.py
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import PEERS, emit, env_python, run_json, versions

HOOK = "blocks.6.hook_resid_post"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=61440, help="LM tokens (contexts x 128), a multiple of 2048")
    ap.add_argument("--acts-tokens", type=int, default=32768)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="/tmp/mechscope-sae-bench", help="where sae_data.py writes its inputs")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peers-json", type=Path, help="reuse the peers' lines from an earlier run of this script")
    ap.add_argument("--lr", type=float, default=None)
    args = ap.parse_args(argv)

    import torch
    from safetensors.torch import load_file

    import mechscope
    from mechscope.data.corpus import CorpusConfig
    from mechscope.runtime import cpu_model
    from mechscope.sae.config import SAEConfig, SAETrainConfig
    from mechscope.sae.store import HarvestConfig, harvest
    from mechscope.sae.train import ModelSource, StoreSource, TensorSource, train_saes

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not (data / "acts.safetensors").is_file():
        import subprocess

        subprocess.run([sys.executable, str(PEERS / "sae_data.py"), "--out", str(data), "--tokens", str(args.tokens),
                        "--acts-tokens", str(args.acts_tokens), "--threads", str(args.threads)], check=True)  # fmt: skip
    toks = load_file(str(data / "tokens.safetensors"))
    contexts, heldout = toks["tokens"][: args.tokens // 128], toks["heldout"]
    acts = load_file(str(data / "acts.safetensors"))["acts"]
    model = mechscope.load("gemma-3-270m", device="cpu")
    cfg = SAEConfig(arch="topk", d_in=640, width=4096, k=32)
    rows = contexts.shape[0] * 127
    tc = SAETrainConfig(tokens=rows - rows % 2032, batch_tokens=2032, lr=args.lr, log_every=5)
    xh = model.collect(heldout, [HOOK], prepend_bos=False)[HOOK][:, 1:].reshape(-1, 640)

    def quality(sae) -> dict:
        with torch.no_grad():
            f = sae.encode(xh)
            r = sae.decode(f)
        return {"fvu": round(float(((xh - r) ** 2).sum() / ((xh - xh.mean(0)) ** 2).sum()), 4),
                "dead_fraction": round(float((f > 0).any(0).logical_not().float().mean()), 4),
                "l0": round(float((f > 0).sum(1).float().mean()), 2)}  # fmt: skip

    out = {}
    t = time.perf_counter()
    (e2e,) = train_saes(ModelSource(model, HOOK, contexts=contexts), [cfg], tc, progress=False)
    sec = time.perf_counter() - t
    out["mechscope_e2e"] = {"seconds": round(sec, 2), "tokens_per_s": round(tc.steps * 16 * 128 / sec), **quality(e2e.sae)}
    t = time.perf_counter()  # the model's matmuls under bf16 autocast; quality still on float32 activations
    (e2e16,) = train_saes(ModelSource(model, HOOK, contexts=contexts, forward_dtype="bfloat16"), [cfg], tc, progress=False)
    sec = time.perf_counter() - t
    out["mechscope_e2e_bf16_forward"] = {"seconds": round(sec, 2), "tokens_per_s": round(tc.steps * 16 * 128 / sec),
                                         **quality(e2e16.sae)}  # fmt: skip

    tmp = Path(tempfile.mkdtemp(prefix="mechscope-bench-sae-"))
    try:
        # the same contexts, stored: a corpus file would repack them, so write the store from a ModelSource-
        # equivalent harvest over the built-in corpus (the same train-split stream the contexts came from)
        store = harvest(model, HarvestConfig(hooks=(HOOK,), tokens=contexts.numel(), corpus=CorpusConfig()),
                        tmp / "store", progress=False)  # fmt: skip
        t = time.perf_counter()
        (st,) = train_saes(StoreSource(store, HOOK), [cfg], tc, progress=False)
        sec = time.perf_counter() - t
        out["mechscope_store"] = {"seconds": round(sec, 2), "rows_per_s": round(tc.steps * 2032 / sec), **quality(st.sae)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for name, dtype in (("mechscope_step", "float32"), ("mechscope_step_bf16", "bfloat16")):
        tcs = SAETrainConfig(tokens=acts.shape[0] - acts.shape[0] % 2048, batch_tokens=2048, matmul_dtype=dtype, lr=args.lr)
        train_saes(TensorSource(acts[:8192]), [cfg], SAETrainConfig(tokens=4096, batch_tokens=2048), progress=False)  # warm-up
        t = time.perf_counter()
        train_saes(TensorSource(acts), [cfg], tcs, progress=False)
        sec = time.perf_counter() - t
        out[name] = {"seconds": round(sec, 2), "rows_per_s": round(tcs.steps * 2048 / sec)}

    peers = {}
    if args.peers_json:
        import json

        peers = json.loads(args.peers_json.read_text().splitlines()[-1])["peers"]
    elif not args.no_peers:
        common = ["--tokens", str(args.tokens), "--threads", str(args.threads), "--tokens-file",
                  str(data / "tokens.safetensors"), "--acts-file", str(data / "acts.safetensors")]  # fmt: skip
        for peer, env in (("sparsify", "sparsify"), ("saelens", "sae")):
            peers[peer] = run_json([env_python(env), PEERS / f"sae_{peer}.py", *common], timeout=3600)
    fastest_e2e = max((p.get("end_to_end", {}).get("tokens_per_s", 0) for p in peers.values()), default=None)
    fastest_step = max((p.get("sae_step", {}).get("tokens_per_s", 0) for p in peers.values()), default=None)
    ratios = {}
    if fastest_e2e:
        ratios["e2e_vs_fastest_peer"] = round(out["mechscope_e2e"]["tokens_per_s"] / fastest_e2e, 3)
        ratios["e2e_bf16_forward_vs_fastest_peer"] = round(out["mechscope_e2e_bf16_forward"]["tokens_per_s"] / fastest_e2e, 3)
    if fastest_step:
        ratios["store_vs_fastest_peer_step"] = round(out["mechscope_store"]["rows_per_s"] / fastest_step, 3)
        ratios["step_vs_fastest_peer_step"] = round(out["mechscope_step"]["rows_per_s"] / fastest_step, 3)
        ratios["step_bf16_vs_fastest_peer_step"] = round(out["mechscope_step_bf16"]["rows_per_s"] / fastest_step, 3)
    emit("sae_train_throughput", cpu=cpu_model(), hook=HOOK, sae=cfg.to_dict(), tokens=args.tokens, threads=args.threads,
         mechscope=out, peers=peers, ratios=ratios, targets={"e2e": 2.0, "store_step": 2.0, "dead_fraction": 0.05},
         versions=versions("torch", "transformers"))  # fmt: skip


if __name__ == "__main__":
    main()
