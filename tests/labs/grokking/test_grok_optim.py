"""AdamW + warm-up equals torch's; the Grokfast filter does what the paper says."""

from __future__ import annotations

import torch

from mechscope.labs.grokking.config import GrokConfig
from mechscope.labs.grokking.optim import OptimizerState, adamw_step, grokfast_filter


def test_adamw_step_equals_torch_adamw_with_lambdalr():
    cfg = GrokConfig.paper(lr=3e-3, warmup_steps=4)
    gen = torch.Generator().manual_seed(0)
    ours = {"w": torch.randn(3, 5, generator=gen, dtype=torch.float64)}
    ref = torch.nn.Parameter(ours["w"].clone())
    opt = torch.optim.AdamW([ref], lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, eps=cfg.eps, foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / cfg.warmup_steps, 1))
    state = OptimizerState.zeros_like(ours)
    for _ in range(12):
        g = torch.randn(3, 5, generator=gen, dtype=torch.float64)
        ref.grad = g.clone()
        opt.step()
        sched.step()
        adamw_step(ours, {"w": g}, state, cfg)
    assert state.step == 12
    assert torch.allclose(ours["w"], ref.detach(), rtol=0, atol=1e-14)
    assert torch.allclose(state.exp_avg_sq["w"], opt.state[ref]["exp_avg_sq"], atol=1e-15)


def test_grokfast_filter_amplifies_the_slow_gradient():
    state = OptimizerState()
    g1, g2 = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    out1 = grokfast_filter({"w": g1}, state, alpha=0.9, lamb=2.0)["w"]
    assert torch.allclose(out1, g1 + 2.0 * g1)  # the EMA starts at the first gradient
    out2 = grokfast_filter({"w": g2}, state, alpha=0.9, lamb=2.0)["w"]
    ema = 0.9 * g1 + 0.1 * g2
    assert torch.allclose(out2, g2 + 2.0 * ema)
    assert torch.allclose(state.grad_ema["w"], ema)


def test_state_round_trips_through_flat_tensors():
    state = OptimizerState.zeros_like({"a": torch.ones(2), "b": torch.ones(3)})
    state.grad_ema["a"] = torch.full((2,), 5.0)
    back = OptimizerState.from_tensors(7, state.tensors())
    assert back.step == 7 and set(back.exp_avg) == {"a", "b"} and torch.equal(back.grad_ema["a"], state.grad_ema["a"])
