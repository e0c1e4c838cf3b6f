"""The fast path equals the reference forward, in values and gradients."""

from __future__ import annotations

import pytest
import torch

from mechscope.labs.grokking.config import GrokConfig
from mechscope.labs.grokking.data import Dataset, tokens
from mechscope.labs.grokking.fast import (
    FastBatch,
    MixPattern,
    SeedChunks,
    chunked_logits,
    fast_forward,
    fast_logits,
    mix_index,
    mix_rows,
)
from mechscope.labs.grokking.model import PARAM_NAMES, init_params, loss_and_accuracy, reference_forward


def _setup(cfg: GrokConfig, dtype, perturb: float = 0.3):
    ds = Dataset.build(cfg)
    idx = ds.stacked_split(True)
    a, b, labels = ds.a[idx], ds.b[idx], ds.labels[idx]
    params = init_params(cfg.model, cfg.seeds, dtype)
    # move away from the init (zero biases) so that every path matters
    gen = torch.Generator().manual_seed(1)
    params = {n: (w + perturb * torch.randn(w.shape, generator=gen, dtype=dtype)).requires_grad_(True) for n, w in params.items()}
    toks = tokens(a.reshape(-1), b.reshape(-1), cfg.model.p).view(cfg.n_seeds, -1, 3)
    return params, a, b, labels, toks


def _losses(params, a, b, labels, toks, p, n_heads):
    ref = reference_forward(params, toks)[:, :, -1]
    fast = fast_logits(params, FastBatch.build(a, b, p, n_heads))
    return ref, fast, loss_and_accuracy(ref, labels)[0].sum(), loss_and_accuracy(fast, labels)[0].sum()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_fast_equals_reference_values_and_gradients(tiny_cfg, dtype, tol):
    cfg = GrokConfig.paper(model=tiny_cfg.model, n_seeds=2)
    params, a, b, labels, toks = _setup(cfg, dtype)
    ref, fast, loss_ref, loss_fast = _losses(params, a, b, labels, toks, cfg.model.p, cfg.model.n_heads)
    assert (ref - fast).abs().max().item() <= tol * max(1.0, ref.abs().max().item())
    g_ref = torch.autograd.grad(loss_ref, [params[n] for n in PARAM_NAMES])
    g_fast = torch.autograd.grad(loss_fast, [params[n] for n in PARAM_NAMES])
    for name, gr, gf in zip(PARAM_NAMES, g_ref, g_fast):
        assert gr.abs().max() > 0, name  # every parameter is on the path to the loss
        assert (gr - gf).abs().max().item() <= tol * max(1.0, gr.abs().max().item()), name


def test_fast_path_on_the_paper_model_fp32():
    """At the paper's size and initialisation, fp32 logits and gradients agree to 1e-5."""
    cfg = GrokConfig.paper()
    params, a, b, labels, toks = _setup(cfg, torch.float32, perturb=0.0)
    a, b, labels, toks = a[:, :400], b[:, :400], labels[:, :400], toks[:, :400]
    ref, fast, loss_ref, loss_fast = _losses(params, a, b, labels, toks, 113, 4)
    assert (ref - fast).abs().max().item() <= 1e-5
    g_ref = torch.autograd.grad(loss_ref, [params[n] for n in PARAM_NAMES])
    g_fast = torch.autograd.grad(loss_fast, [params[n] for n in PARAM_NAMES])
    for name, gr, gf in zip(PARAM_NAMES, g_ref, g_fast):
        assert (gr - gf).abs().max().item() <= 1e-5, name


def test_stacked_seeds_equal_separate_models(tiny_cfg):
    cfg = GrokConfig.paper(model=tiny_cfg.model, n_seeds=3)
    params, a, b, _, _ = _setup(cfg, torch.float64)
    stacked = fast_logits(params, FastBatch.build(a, b, 23, 4))
    for i in range(3):
        one = {n: w[i : i + 1] for n, w in params.items()}
        alone = fast_logits(one, FastBatch.build(a[i : i + 1], b[i : i + 1], 23, 4))
        assert torch.allclose(stacked[i], alone[0], atol=1e-12)


def test_seed_chunks_give_the_stacked_result(tiny_cfg):
    cfg = GrokConfig.paper(model=tiny_cfg.model, n_seeds=3)
    params, a, b, _, _ = _setup(cfg, torch.float64)
    stacked = fast_logits(params, FastBatch.build(a, b, 23, 4))
    for per_chunk in (1, 2, 3):
        chunks = SeedChunks.build(a, b, 23, 4, per_chunk)
        assert len(chunks.chunks) == -(-3 // per_chunk)
        assert torch.allclose(chunked_logits(params, chunks), stacked, atol=1e-12)


def test_fast_forward_neurons_match_reference_hook(tiny_cfg):
    params, a, b, _, toks = _setup(tiny_cfg, torch.float64)
    cache: dict = {}
    reference_forward(params, toks, cache)
    _, post = fast_forward(params, FastBatch.build(a, b, 23, 4))
    assert torch.allclose(post, cache["blocks.0.mlp.hook_post"][:, :, -1], atol=1e-12)


def test_mix_rows_matches_dense_gather_with_gradients():
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 7, (2, 9), generator=gen)
    b = torch.randint(0, 7, (2, 9), generator=gen)
    index = mix_index(a, b, 7, 3)
    assert bool((index.diff(dim=-1) > 0).all())
    table = torch.randn(2, (2 * 7 + 1) * 3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 9, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    out = mix_rows(weights, MixPattern.build(index, table.shape[1]), table)
    dense = (weights[..., None] * torch.stack([table[s][index[s]] for s in range(2)])).sum(2)
    assert torch.allclose(out, dense)
    up = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    g1 = torch.autograd.grad((out * up).sum(), [weights, table])
    g2 = torch.autograd.grad((dense * up).sum(), [weights, table])
    for x, y in zip(g1, g2):
        assert torch.allclose(x, y)
