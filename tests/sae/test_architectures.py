"""Each SAE architecture against a plain dense reference: inference values, training loss and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import ConfigError
from mechscope.sae.artifact import build
from mechscope.sae.base import fvu, folded, geometric_median
from mechscope.sae.config import SAEConfig, SAETrainConfig

D, W, K, B = 16, 64, 4, 48


def make(arch: str, seed: int = 0, **kw):
    cfg = SAEConfig(arch=arch, d_in=D, width=W, k=K, **kw)
    sae = build(cfg)
    sae.init_weights(torch.Generator().manual_seed(seed), torch.randn(200, cfg.out_dim))
    with torch.no_grad():  # biases away from zero so their gradients are exercised
        sae.b_enc.normal_(0, 0.1)
        if sae.W_skip is not None:
            sae.W_skip.normal_(0, 0.1)
    return sae


def grads(sae, loss):
    sae.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in sae.named_parameters() if p.grad is not None}


def topk_dense(pre, k):
    v, i = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, i, v.relu())


def batch_topk_dense(pre, n):
    flat = pre.reshape(-1)
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[flat.topk(n).indices] = True
    return (pre * keep.view_as(pre)).relu()


def aux_dense(sae, x, y, recon, pre, dead, tc):
    n_dead = int(dead.sum())
    aux_k = min(tc.aux_k, n_dead)
    masked = pre.masked_fill(~dead, float("-inf"))
    i = masked.topk(aux_k, dim=-1).indices
    fa = torch.zeros_like(pre).scatter(-1, i, pre.gather(-1, i).relu())
    e = (y - recon).detach()
    return fvu(e, fa @ sae.W_dec) * min(1.0, n_dead / aux_k)


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
@pytest.mark.parametrize("transcoder", [False, True])
def test_sparse_training_step_equals_dense_reference(arch, transcoder):
    kw = dict(transcoder=True, skip=True, d_out=D + 4) if transcoder else {}
    sae = make(arch, **kw)
    x = torch.randn(B, D)
    y = torch.randn(B, sae.cfg.out_dim) if transcoder else x
    dead = torch.zeros(W, dtype=torch.bool)
    dead[::3] = True
    tc = SAETrainConfig(aux_k=8)
    out = sae.train_step(x, y, tc, dead)
    got = grads(sae, out.loss)

    pre = sae.pre_acts(x)
    f = topk_dense(pre, K) if arch == "topk" else batch_topk_dense(pre, K * B)
    recon = f @ sae.W_dec + sae.b_dec + (x @ sae.W_skip if transcoder else 0)
    loss = fvu(y, recon) + tc.aux_coeff * aux_dense(sae, x, y, recon, pre, dead, tc)
    want = grads(sae, loss)
    assert torch.allclose(out.loss, loss, atol=1e-6)
    assert torch.allclose(out.recon, recon, atol=1e-5)
    assert set(got) == set(want)
    for n in want:
        assert torch.allclose(got[n], want[n], atol=1e-5, rtol=1e-4), n
    assert float(out.l0) == pytest.approx(float((f > 0).sum() / B))


def test_relu_loss_and_gradients_equal_reference():
    sae = make("relu")
    x = torch.randn(B, D)
    tc = SAETrainConfig(l1_coeff=3.0)
    out = sae.train_step(x, x, tc, None)
    got = grads(sae, out.loss)
    f = (( x - sae.b_dec) @ sae.W_enc + sae.b_enc).relu()
    recon = f @ sae.W_dec + sae.b_dec
    sigma = ((x - x.mean(0)) ** 2).sum(1).mean().sqrt()
    loss = ((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum() + 3.0 * (f * sae.W_dec.norm(dim=1)).sum(1).mean() / sigma
    want = grads(sae, loss)
    assert torch.allclose(out.loss, loss, atol=1e-6)
    for n in want:
        assert torch.allclose(got[n], want[n], atol=1e-6), n


def test_jumprelu_straight_through_gradients():
    """Values: z·H(z-θ). Gradients: H(z-θ) in z; the rectangle-kernel pseudo-derivatives in θ."""
    sae = make("jumprelu", bandwidth=0.5, threshold_init=0.3)
    with torch.no_grad():
        sae.log_threshold.copy_(torch.linspace(-2, 0.5, W))
    x = torch.randn(B, D)
    tc = SAETrainConfig(l0_coeff=0.01)
    out = sae.train_step(x, x, tc, None)
    got = grads(sae, out.loss)

    theta = sae.log_threshold.detach().exp()
    z = sae.pre_acts(x).detach()
    f = z * (z > theta)
    recon = f @ sae.W_dec + sae.b_dec
    assert torch.allclose(out.recon, recon, atol=1e-6)
    assert float(out.l0) == pytest.approx(float((f > 0).sum() / B))
    # d loss / d f, from the reconstruction term
    fl = f.clone().requires_grad_()
    main = fvu(x, fl @ sae.W_dec.detach() + sae.b_dec.detach())
    (g_f,) = torch.autograd.grad(main, fl)
    kern = (((z - theta) / 0.5).abs() < 0.5).float()
    d_theta = (g_f * -(theta / 0.5) * kern).sum(0) + tc.l0_coeff * (-(1 / 0.5) * kern).sum(0) / B
    assert torch.allclose(got["log_threshold"], d_theta * theta, atol=1e-5)
    # the encoder sees gradient only where the latent is open
    g_z = g_f * (z > theta)
    xin = x - sae.b_dec.detach()
    assert torch.allclose(got["W_enc"], xin.t() @ g_z, atol=1e-5)
    assert torch.allclose(got["b_enc"], g_z.sum(0), atol=1e-5)


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "jumprelu"])
def test_inference_encode_matches_definition(arch):
    sae = make(arch)
    x = torch.randn(5, 7, D)  # any leading shape
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    if arch == "topk":
        want = topk_dense(pre, K)
    elif arch == "relu":
        want = pre.relu()
    else:
        with torch.no_grad():
            (sae.log_threshold if arch == "jumprelu" else sae.threshold).fill_(math.log(0.2) if arch == "jumprelu" else 0.2)
        want = pre * (pre > 0.2)
    assert torch.allclose(sae.encode(x), want, atol=1e-6)
    assert torch.allclose(sae(x), want @ sae.W_dec + sae.b_dec, atol=1e-5)


def test_batchtopk_threshold_tracks_smallest_kept_activation():
    sae = make("batchtopk")
    x = torch.randn(B, D)
    out = sae.train_step(x, x, SAETrainConfig(), None)
    assert float(sae.threshold[0]) == pytest.approx(float(out.kept.min()))
    out2 = sae.train_step(x * 1.5, x * 1.5, SAETrainConfig(), None)
    assert float(sae.threshold[0]) == pytest.approx(0.99 * float(out.kept.min()) + 0.01 * float(out2.kept.min()))


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "jumprelu"])
@pytest.mark.parametrize("transcoder", [False, True])
def test_folding_the_training_scale_is_exact(arch, transcoder):
    kw = dict(transcoder=True, skip=True, d_out=D + 2) if transcoder else {}
    sae = make(arch, **kw).eval()
    if arch == "batchtopk":
        with torch.no_grad():
            sae.threshold.fill_(0.1)
    s_in, s_out = 0.37, (2.5 if transcoder else 0.37)
    x = torch.randn(9, D) * 3
    raw = folded(sae, s_in, s_out)
    assert torch.allclose(raw.encode(x), sae.encode(x * s_in) / s_out, atol=1e-5)
    assert torch.allclose(raw(x), sae(x * s_in) / s_out, atol=1e-5)
    if sae.cfg.unit_decoder:
        assert torch.allclose(raw.W_dec.norm(dim=1), torch.ones(W), atol=1e-5)


def test_init_decoder_unit_norm_encoder_transpose_and_median():
    sae = make("topk")
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(W), atol=1e-6)
    assert torch.equal(sae.W_enc, sae.W_dec.t())
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0]])
    m = geometric_median(pts)
    cost = lambda p: (pts - p).norm(dim=1).sum()  # noqa: E731
    for d in (torch.tensor([1e-2, 0]), torch.tensor([0, 1e-2]), torch.tensor([-1e-2, -1e-2])):
        assert cost(m) <= cost(m + d) + 1e-6


@pytest.mark.parametrize("bad, match", [
    (dict(width=0), "width"), (dict(width=8, k=9), "cannot exceed"), (dict(k=0), "k must"),
    (dict(arch="gated"), "unknown SAE architecture"), (dict(skip=True), "transcoders"),
    (dict(d_out=8), "transcoder"),
])  # fmt: skip
def test_config_refuses_bad_values(bad, match):
    with pytest.raises(ConfigError, match=match):
        SAEConfig(**{"d_in": 16, **bad})
