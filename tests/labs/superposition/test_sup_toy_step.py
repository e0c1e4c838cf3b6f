"""The hand-written toy training step: gradients against autograd, Adam against torch's, the sparse sampler's law."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.labs.superposition.config import ToyConfig
from mechscope.labs.superposition.toy import train
from mechscope.labs.superposition.toy_data import CompactBatch, SparseSampler
from mechscope.labs.superposition.toy_step import FlatAdam, loss_and_grads

pytestmark = pytest.mark.usefixtures("one_thread")
f64 = torch.float64


def _autograd_reference(W, b, x, empty, imp, batch):
    """Loss and gradients of the dense batch (x plus `empty` all-zero examples) through autograd."""
    W, b = W.clone().requires_grad_(), b.clone().requires_grad_()

    def loss(xx):
        y = torch.relu(torch.bmm(W.transpose(1, 2), torch.bmm(W, xx)) + b)
        return (((y - xx) ** 2).sum(-1) * imp).sum(-1) / batch

    zeros = torch.zeros(x.shape[0], x.shape[1], 1, dtype=f64)
    total = loss(torch.cat([x, zeros.expand(-1, -1, max(empty, 0))], -1))
    if empty < 0:  # one column too many was an empty example: take its term out again
        total = total - loss(zeros)
    total.sum().backward()
    return total.detach(), W.grad, b.grad


@pytest.mark.parametrize("cols, empty", [(9, 5), (6, 0), (7, -1)])
def test_closed_form_gradients_equal_autograd(cols, empty):
    g = torch.Generator().manual_seed(cols)
    inst, m, n = 3, 2, 5
    W, b = torch.randn(inst, m, n, dtype=f64, generator=g), torch.randn(inst, n, 1, dtype=f64, generator=g)
    x = torch.rand(inst, n, cols, dtype=f64, generator=g) * (torch.rand(inst, n, cols, dtype=f64, generator=g) < 0.4)
    imp = torch.rand(inst, n, dtype=f64, generator=g)
    batch = cols + empty
    gW, gb = torch.full_like(W, math.nan), torch.full_like(b, math.nan)
    loss = loss_and_grads(W, b, CompactBatch(x, empty), (2.0 / batch) * imp[:, :, None], gW, gb, with_loss=True)
    ref_loss, ref_gW, ref_gb = _autograd_reference(W, b, x, empty, imp, batch)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gW, ref_gW, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gb, ref_gb, rtol=1e-12, atol=1e-12)
    assert loss_and_grads(W, b, CompactBatch(x, empty), (2.0 / batch) * imp[:, :, None], gW, gb) is None


def test_flat_adam_equals_torch_adam():
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(4, 15, generator=g)
    mine, ref = p0.clone(), p0.clone().requires_grad_()
    opt, torch_opt = FlatAdam(mine), torch.optim.Adam([ref], lr=1.0)
    for t in range(20):
        grad = torch.randn(4, 15, generator=g) * 10 ** (t % 3 - 1)
        lr = 0.01 * (1 + math.cos(t / 7))
        opt.step(grad, lr)
        torch_opt.param_groups[0]["lr"] = lr
        ref.grad = grad.clone()
        torch_opt.step()
    torch.testing.assert_close(mine, ref.detach(), rtol=1e-6, atol=1e-7)


def test_sampler_law():
    """Each entry present with probability p, independently, then uniform in [0, 1)."""
    n, batch, p = 5, 4000, 0.05
    x = SparseSampler(4, n, batch, p, torch.Generator().manual_seed(1)).dense()
    assert x.shape == (4, batch, n)
    on = x > 0
    assert abs(float(on.float().mean()) - p) < 4 * math.sqrt(p * (1 - p) / on.numel())
    per_feature = on.float().mean((0, 1))
    assert (per_feature - p).abs().max() < 5 * math.sqrt(p * (1 - p) / (4 * batch))
    # examples: how many features each has follows Binomial(n, p) (independence within an example)
    counts = torch.bincount(on.sum(-1).flatten(), minlength=n + 1).float() / (4 * batch)
    for k, want in enumerate(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(3)):
        assert abs(float(counts[k]) - want) < 5 * math.sqrt(want * (1 - want) / (4 * batch)) + 1e-4
    vals = x[on]
    assert float(vals.max()) < 1.0 and 0.47 < float(vals.mean()) < 0.53
    assert 0.22 < float(vals.quantile(0.25)) < 0.28 and 0.72 < float(vals.quantile(0.75)) < 0.78


def test_sampler_per_instance_density_and_extension():
    s = SparseSampler(3, 5, 400, torch.tensor([1.0, 0.3, 0.01]), torch.Generator().manual_seed(0))
    frac = (s.dense() > 0).float().mean((1, 2))
    assert float(frac[0]) == 1.0 and 0.27 < float(frac[1]) < 0.33 and float(frac[2]) < 0.03
    # too few gaps per draw: the sampler appends draws until every row reaches past the block
    s = SparseSampler(2, 5, 400, 0.2, torch.Generator().manual_seed(0))
    assert s.sparse
    s.draws, s.offsets = 7, torch.arange(7, dtype=f64)
    pos = s.positions()
    assert pos.shape[1] > 7 and float(pos[:, -1].min()) >= 2000 and bool((pos.diff(dim=1) >= 1).all())
    assert 0.17 < float((s.dense() > 0).float().mean()) < 0.23
    # dense features: one uniform per entry, every example kept
    s = SparseSampler(2, 5, 400, torch.tensor([0.5, 0.05]), torch.Generator().manual_seed(0))
    cb = s.compact()
    assert not s.sparse and cb.empty == 0 and cb.x.shape == (2, 5, 400)
    assert 0.45 < float((cb.x[0] > 0).float().mean()) < 0.55 and 0.03 < float((cb.x[1] > 0).float().mean()) < 0.07


@pytest.mark.parametrize("density", [0.05, 0.25, 1.0])
def test_compact_batch_is_the_dense_batch_without_empty_examples(density):
    """Same seed, same draws: the compact columns are the dense batch's non-empty examples, in order."""
    inst, n, batch = 3, 5, 300
    dense = SparseSampler(inst, n, batch, density, torch.Generator().manual_seed(7)).dense()
    cb = SparseSampler(inst, n, batch, density, torch.Generator().manual_seed(7)).compact()
    assert cb.empty == batch - cb.x.shape[2]
    for i in range(inst):
        rows = dense[i][(dense[i] > 0).any(-1)]  # [k, n]
        cols = cb.x[i].T  # [cols, n]
        assert torch.equal(cols[: len(rows)], rows) and not bool(cols[len(rows) :].any())


def test_training_is_seeded_and_sweep_densities_train():
    a, b = train(ToyConfig(steps=50, seed=3)), train(ToyConfig(steps=50, seed=3))
    assert torch.equal(a.W, b.W) and torch.equal(a.final_loss, b.final_loss)
    models = train(ToyConfig(n=6, m=2, instances=3, steps=200, density=1.0), density=torch.tensor([1.0, 0.1, 0.01]))
    assert torch.isfinite(models.W).all() and torch.isfinite(models.final_loss).all()
    # dense features (density 1): a 2-dimensional model keeps about its 2 most important features
    assert int((models.W[0].norm(dim=0) > 0.5).sum()) <= 3
