"""Peak memory of SAE training from an activation store against the issue's bound.

Issue 11 target: peak RSS of training from a store ≤ one store shard + 2 × (the SAE's parameters and
optimizer state). Measured as the growth of this process's peak RSS (``VmHWM``, reset with ``/proc/self/clear_refs``) over its RSS just
before training starts (torch, mechscope and the store's manifest loaded; no shard read yet), so the
interpreter and torch's own ~0.3 GB are not counted against the SAE.

A tiny SAE is trained first (not measured): the first training in a process pages in torch's kernels
and thread pools (~90 MB) whatever the SAE's size. The store is harvested first in a separate process (``--store`` reuses one): Gemma 3 270M,
blocks.6.hook_resid_post, 256 contexts per shard (83 MB float32, 42 MB bfloat16). TopK, width 4096, k 32.

    . .venv/bin/activate && HF_HUB_OFFLINE=1 flock /tmp/mechscope-cpu.lock python benchmarks/sae_train_memory.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import emit, rss_gb, versions


def reset_peak() -> None:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_gb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) * 1024 / 1e9

HOOK = "blocks.6.hook_resid_post"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--tokens", type=int, default=65536, help="store size (LM tokens)")
    ap.add_argument("--train-tokens", type=int, default=131072)
    args = ap.parse_args(argv)
    store_dir = args.store
    if store_dir is None:
        store_dir = Path(tempfile.mkdtemp(prefix="mechscope-bench-mem-")) / "store"
        subprocess.run([sys.executable, "-m", "mechscope", "sae", "harvest", "--hook", HOOK, "--tokens", str(args.tokens),
                        "--dtype", args.dtype, "--out", str(store_dir), "--json"], check=True, capture_output=True)  # fmt: skip

    import torch

    from mechscope.runtime import cpu_model
    from mechscope.sae.config import SAEConfig, SAETrainConfig
    from mechscope.sae.store import ActivationStore
    from mechscope.sae.train import StoreSource, train_saes

    torch.set_num_threads(2)
    store = ActivationStore(store_dir)
    shard_bytes = max((store_dir / n).stat().st_size for n in store.shard_names)
    cfg = SAEConfig(d_in=640, width=args.width, k=32)
    params = sum(t.numel() for t in (torch.empty(640, args.width), torch.empty(args.width), torch.empty(args.width, 640),
                                     torch.empty(640))) * 4  # fmt: skip
    bound = shard_bytes + 2 * (params * 3)  # parameters + Adam's two moments, twice
    tc = SAETrainConfig(tokens=args.train_tokens, batch_tokens=2048, checkpoint_every=0)
    from mechscope.sae.train import TensorSource

    # warm-up on a tiny SAE: torch's kernels and thread pools page in once per process (~90 MB of code and
    # pools that no training holds); the measurement starts after that
    train_saes(TensorSource(torch.randn(4096, 640)), [SAEConfig(d_in=640, width=256, k=8)],
               SAETrainConfig(tokens=4096, batch_tokens=1024, checkpoint_every=0), progress=False)  # fmt: skip
    base = rss_gb()
    reset_peak()
    train_saes(StoreSource(store, HOOK), [cfg], tc, progress=False)
    peak = peak_gb()
    growth = (peak - base) * 1e9
    emit("sae_train_memory", cpu=cpu_model(), store=str(store_dir), dtype=store.config.dtype, shards=len(store.shard_names),
         shard_mb=round(shard_bytes / 1e6, 1), sae_params_mb=round(params / 1e6, 1),
         bound_mb=round(bound / 1e6, 1), rss_before_gb=round(base, 3), peak_rss_gb=round(peak, 3),
         growth_mb=round(growth / 1e6, 1), ratio_to_bound=round(growth / bound, 3), passed=growth <= bound,
         versions=versions("torch"))  # fmt: skip


if __name__ == "__main__":
    main()
