"""Training: planted features are recovered, checkpoints resume bit for bit, bad data stops with one line."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import CheckpointMismatchError, ConfigError, TrainingError
from mechscope.sae import artifact
from mechscope.sae.config import SAEConfig, SAETrainConfig
from mechscope.sae.train import TensorSource, train_saes


def planted(n_rows=24_000, d=32, n_feat=64, active=3, seed=0):
    """Sparse combinations of random unit directions (the ground truth an SAE should find)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_feat, d, generator=g)
    dirs /= dirs.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(n_feat, generator=g)[:active] for _ in range(n_rows)])
    coef = torch.rand(n_rows, active, generator=g) * 2 + 0.5
    x = torch.zeros(n_rows, n_feat).scatter(1, idx, coef) @ dirs
    return x, dirs


def max_cos(W_dec, dirs):
    dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    return (dirs @ dec.t()).max(dim=1).values


@pytest.mark.parametrize("arch, extra", [
    ("topk", {}), ("batchtopk", {}), ("jumprelu", {"l0_coeff": 0.1}), ("relu", {"l1_coeff": 0.3}),
])  # fmt: skip
def test_saes_recover_planted_sparse_features(arch, extra, one_thread):
    x, dirs = planted()
    cfg = SAEConfig(arch=arch, d_in=32, width=128, k=3)
    tc = SAETrainConfig(tokens=240_000, batch_tokens=512, lr=2e-2, log_every=50, **extra)
    (res,) = train_saes(TensorSource(x), [cfg], tc, progress=False)
    mmc = float(max_cos(res.sae.W_dec.detach(), dirs).mean())
    assert mmc >= 0.9, f"{arch}: mean max cosine {mmc:.3f}"
    assert res.history[-1]["fvu"] < (0.25 if arch in ("relu", "jumprelu") else 0.12)  # penalties trade FVU for sparsity


def test_several_saes_in_one_pass_equal_separate_runs(one_thread):
    x, _ = planted(4096)
    tc = SAETrainConfig(tokens=4096 * 2, batch_tokens=256, lr=1e-3, log_every=8)
    cfgs = [SAEConfig(d_in=32, width=64, k=4), SAEConfig(d_in=32, width=128, k=8)]
    both = train_saes(TensorSource(x), cfgs, tc, progress=False)
    for cfg, r in zip(cfgs, both):
        (alone,) = train_saes(TensorSource(x), [cfg], tc, progress=False)
        for k, v in artifact.weights(alone.sae).items():
            assert torch.equal(v, artifact.weights(r.sae)[k]), k


class Killed(Exception):
    pass


class KillAfter(TensorSource):
    """A source whose stream dies after ``n`` batches (a kill mid-training)."""

    def __init__(self, x, n):
        super().__init__(x)
        self.n = n

    def batches(self, tc, start, rank, world):
        for i, b in enumerate(super().batches(tc, start, rank, world)):
            if i == self.n:
                raise Killed
            yield b


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu"])
def test_resume_after_a_kill_is_bit_identical(tmp_path, arch, one_thread):
    x, _ = planted(4096)
    cfg = SAEConfig(arch=arch, d_in=32, width=64, k=4)
    tc = SAETrainConfig(tokens=256 * 30, batch_tokens=256, lr=1e-3, checkpoint_every=7, log_every=5, dead_tokens=512)
    (whole,) = train_saes(TensorSource(x), [cfg], tc, [tmp_path / "whole"], progress=False)
    with pytest.raises(Killed):
        train_saes(KillAfter(x, 17), [cfg], tc, [tmp_path / "cut"], progress=False)
    assert (tmp_path / "cut.checkpoint").is_dir() and not (tmp_path / "cut").exists()
    (resumed,) = train_saes(TensorSource(x), [cfg], tc, [tmp_path / "cut"], progress=False)
    a, b = artifact.load(tmp_path / "whole"), artifact.load(tmp_path / "cut")
    for k, v in artifact.weights(a).items():
        assert torch.equal(v, artifact.weights(b)[k]), k
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history)
    assert not (tmp_path / "cut.checkpoint").exists()


def test_checkpoint_of_another_training_is_refused(tmp_path, one_thread):
    x, _ = planted(2048)
    tc = SAETrainConfig(tokens=256 * 10, batch_tokens=256, checkpoint_every=3)
    with pytest.raises(Killed):
        train_saes(KillAfter(x, 5), [SAEConfig(d_in=32, width=64, k=4)], tc, [tmp_path / "s"], progress=False)
    with pytest.raises(CheckpointMismatchError, match="--fresh"):
        train_saes(TensorSource(x), [SAEConfig(d_in=32, width=64, k=8)], tc, [tmp_path / "s"], progress=False)
    train_saes(TensorSource(x), [SAEConfig(d_in=32, width=64, k=8)], tc, [tmp_path / "s"], progress=False, fresh=True)
    assert artifact.load(tmp_path / "s").cfg.k == 8


def test_nan_activations_stop_at_the_offending_step(one_thread):
    x, _ = planted(2048)
    x[1000] = float("nan")
    tc = SAETrainConfig(tokens=2048 * 3, batch_tokens=256, seed=1)
    with pytest.raises(TrainingError, match=r"non-finite activations in the batch of step \d+"):
        train_saes(TensorSource(x), [SAEConfig(d_in=32, width=64, k=4)], tc, progress=False)


def test_dimension_mismatch_is_one_line():
    with pytest.raises(ConfigError, match="d_in=16"):
        train_saes(TensorSource(torch.randn(512, 32)), [SAEConfig(d_in=16, width=64, k=4)], SAETrainConfig(), progress=False)


def test_saved_sae_reads_raw_activations(tmp_path, one_thread):
    """Training rescales activations; the saved SAE must reconstruct unscaled ones as well as in training."""
    x, _ = planted(8192)
    x = x * 40 + 3  # far from unit scale
    tc = SAETrainConfig(tokens=8192 * 6, batch_tokens=512, lr=3e-3, log_every=16)
    (res,) = train_saes(TensorSource(x), [SAEConfig(d_in=32, width=128, k=3)], tc, [tmp_path / "s"], progress=False)
    sae = artifact.load(tmp_path / "s")
    recon = sae(x)
    f = float(((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert f < 2 * res.history[-1]["fvu"] + 0.02
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(128), atol=1e-4)
