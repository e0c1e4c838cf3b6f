"""Data-parallel training: two CPU ranks (gloo) match one rank with the same global batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from mechscope.sae import artifact
from mechscope.sae.config import SAEConfig, SAETrainConfig
from mechscope.sae.train import TensorSource, train_saes

CFG = SAEConfig(arch="topk", d_in=32, width=64, k=4)


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4096, 32, generator=g) * torch.linspace(0.5, 2, 32)


def tc(batch):
    return SAETrainConfig(tokens=512 * 12, batch_tokens=batch, lr=2e-3, warmup_steps=2, log_every=4, dead_tokens=1024)


def _rank(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        train_saes(TensorSource(data()), [CFG], tc(256), [out], progress=False)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_match_one_rank_with_the_global_batch(tmp_path, one_thread):
    (single,) = train_saes(TensorSource(data()), [CFG], tc(512), progress=False)
    mp.spawn(_rank, args=(2, free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = artifact.load(tmp_path / "ddp")
    assert ddp.info["training"]["world"] == 2 and ddp.info["training"]["tokens"] == single.tokens
    for k, v in artifact.weights(single.sae).items():
        w = artifact.weights(ddp)[k]
        rel = float((w - v).norm() / v.norm().clamp_min(1e-6))
        assert rel < 2e-2, f"{k}: relative difference {rel:.3g}"
    # the same data, far from identical training: different init seeds drift apart by much more
    (other,) = train_saes(TensorSource(data()), [CFG], SAETrainConfig(**{**tc(512).to_dict(), "seed": 1}), progress=False)
    far = float((artifact.weights(other.sae)["W_dec"] - artifact.weights(single.sae)["W_dec"]).norm()
                / artifact.weights(single.sae)["W_dec"].norm())  # fmt: skip
    assert far > 0.2


@pytest.mark.slow
def test_torchrun_cli_trains_from_a_store(tmp_path):
    """``torchrun --nproc_per_node 2 -m mechscope sae train --store …`` (gloo on CPU) writes one SAE."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from mechscope.data.corpus import CorpusConfig
    from mechscope.sae.store import HarvestConfig, harvest
    from tests.tiny import save_tiny_corpus, tiny_model

    model = tiny_model("gemma3")
    corpus = save_tiny_corpus(tmp_path, repeats=12)
    hook = "blocks.1.hook_resid_post"
    harvest(model, HarvestConfig(hooks=(hook,), tokens=16 * 40, corpus=CorpusConfig(sources=(corpus,), seq_len=16),
                                 shard_contexts=8), tmp_path / "store", progress=False)  # fmt: skip
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "mechscope", "sae", "train",
           "--store", str(tmp_path / "store"), "--width", "64", "--k", "4", "--tokens", "2400", "--batch-tokens", "100",
           "--out", str(tmp_path / "sae"), "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 reports
    (row,) = lines[0]["saes"]
    assert row["tokens"] == 2400
    sae = artifact.load(tmp_path / "sae")
    assert sae.info["training"]["world"] == 2 and sae.cfg.width == 64
