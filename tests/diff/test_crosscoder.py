"""The BatchTopK crosscoder: recovery of planted shared and exclusive features, its training step
against a dense reference (values and gradients), relative-norm classes, the saved artifact, guards."""

from __future__ import annotations

import pytest
import torch

from mechscope.diff.crosscoder import Crosscoder, CrosscoderConfig, classes, load_crosscoder, save_crosscoder
from mechscope.diff.crosscoder_train import train_crosscoder
from mechscope.errors import ArtifactError, ConfigError
from mechscope.sae.config import SAETrainConfig

D, N_SHARED, N_BASE, N_TUNED = 16, 12, 6, 6


def synthetic(n: int = 4096, seed: int = 0):
    """Sparse features: some write to both models, some only to base, some only to tuned."""
    g = torch.Generator().manual_seed(seed)
    nf = N_SHARED + N_BASE + N_TUNED
    dec = torch.randn(nf, 2, D, generator=g)
    dec /= dec.norm(dim=-1, keepdim=True)
    dec[N_SHARED:N_SHARED + N_BASE, 1] = 0
    dec[N_SHARED + N_BASE:, 0] = 0
    f = (torch.rand(n, nf, generator=g) < 0.06) * (1 + torch.rand(n, nf, generator=g))
    return f @ dec.reshape(nf, 2 * D), dec


def test_crosscoder_recovers_planted_shared_and_exclusive_features(one_thread):
    x, dec = synthetic()
    cc, last = train_crosscoder(x, CrosscoderConfig(d_model=D, width=48, k=2),
                                SAETrainConfig(tokens=4096 * 20, batch_tokens=512), progress=False)  # fmt: skip
    assert last["fvu"] < 0.05
    W = cc.W_dec.detach() / cc.W_dec.detach().norm(dim=1, keepdim=True)
    true = dec.reshape(len(dec), 2 * D)
    cos = (true / true.norm(dim=1, keepdim=True)) @ W.T
    best, idx = cos.max(1)
    found = best > 0.995  # recovered cleanly (a latent that merged two features is not held to the bands)
    assert found.float().mean() >= 0.75, best
    rel = cc.rel_norm()[idx]
    shared, base, tuned = slice(0, N_SHARED), slice(N_SHARED, N_SHARED + N_BASE), slice(N_SHARED + N_BASE, None)
    assert ((rel[shared] >= 0.3) & (rel[shared] <= 0.7))[found[shared]].all()
    assert (rel[base] < 0.1)[found[base]].all()
    assert (rel[tuned] > 0.9)[found[tuned]].all()
    m = classes(cc.rel_norm())
    assert int(m["tuned_only"].sum()) >= 4 and int(m["base_only"].sum()) >= 4


def test_training_step_equals_a_dense_reference(one_thread):
    torch.manual_seed(0)
    cfg = CrosscoderConfig(d_model=8, width=24, k=3).sae_config()
    cc = Crosscoder(cfg)
    cc.init_weights(torch.Generator().manual_seed(1))
    with torch.no_grad():
        cc.W_dec.mul_(torch.rand(24, 1) + 0.5)  # decoder norms that differ, so the norm weighting matters
        cc.b_dec.normal_()
    x = torch.randn(32, 16)
    tc = SAETrainConfig(aux_coeff=0.0)
    out = cc.train_step(x, x, tc, None)
    out.loss.backward()
    got = {n: p.grad.clone() for n, p in cc.named_parameters()}
    ref = Crosscoder(cfg)
    ref.load_state_dict(cc.state_dict())
    pre = (x - ref.b_dec) @ ref.W_enc + ref.b_enc
    s = ref.W_dec.detach().view(24, 2, 8).norm(dim=-1).sum(-1)
    keep = torch.zeros_like(pre, dtype=torch.bool).view(-1)
    keep[(pre.detach() * s).reshape(-1).topk(3 * 32).indices] = True
    f = (pre * keep.view_as(pre)).relu()
    recon = f @ ref.W_dec + ref.b_dec
    loss = (x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    loss.backward()
    torch.testing.assert_close(out.loss, loss, atol=1e-5, rtol=1e-5)
    for n, p in ref.named_parameters():
        torch.testing.assert_close(got[n], p.grad, atol=1e-5, rtol=1e-4, msg=n)
    # the inference threshold lives in the same norm-weighted space
    kept = (out.kept * s[out.fired]).min()
    assert float(cc.threshold[0]) == pytest.approx(float(kept), rel=1e-6)


def test_relative_norm_classes_by_hand():
    cc = Crosscoder(CrosscoderConfig(d_model=4, width=5, k=1).sae_config())
    with torch.no_grad():
        dec = torch.zeros(5, 2, 4)
        for j, (b, t) in enumerate([(1, 0), (1, 1), (0, 1), (1, 0.2), (0.05, 1)]):
            dec[j, 0, 0], dec[j, 1, 1] = b, t
        cc.W_dec.copy_(dec.reshape(5, 8))
    rel = cc.rel_norm()
    torch.testing.assert_close(rel, torch.tensor([0.0, 0.5, 1.0, 0.2 / 1.2, 1 / 1.05]))
    m = classes(rel)
    assert m["base_only"].tolist() == [True, False, False, False, False]
    assert m["shared"].tolist() == [False, True, False, False, False]
    assert m["tuned_only"].tolist() == [False, False, True, False, True]
    assert m["other"].tolist() == [False, False, False, True, False]


def test_save_and_load_round_trip(tmp_path, one_thread):
    x, _ = synthetic(1024)
    info = {"base_fingerprint": "aaaa", "tuned_fingerprint": "bbbb", "layer": 3}
    cc, _ = train_crosscoder(x, CrosscoderConfig(d_model=D, width=32, k=2), SAETrainConfig(tokens=2048, batch_tokens=256),
                             info=info, progress=False)  # fmt: skip
    path = save_crosscoder(cc, tmp_path / "xc")
    back = load_crosscoder(path)
    torch.testing.assert_close(back.encode(x[:50]), cc.encode(x[:50]))
    torch.testing.assert_close(back.decoders, cc.decoders.detach())
    assert back.info["layer"] == 3

    class Other:
        name, fingerprint = "other", "cccc"

    with pytest.raises(ArtifactError, match="another base model"):
        load_crosscoder(path, base=Other())
    with pytest.raises(ArtifactError):
        load_crosscoder(tmp_path)


def test_guards():
    with pytest.raises(ConfigError):
        CrosscoderConfig(d_model=4, width=2, k=3)
    with pytest.raises(ConfigError, match="NaN"):
        train_crosscoder(torch.full((8, 8), float("nan")), CrosscoderConfig(d_model=4, width=4, k=1), progress=False)
    with pytest.raises(ConfigError, match="must be"):
        train_crosscoder(torch.zeros(8, 6), CrosscoderConfig(d_model=4, width=4, k=1), progress=False)
