"""Do sparse autoencoders find a toy model's true features? (Superposition lab, part 4.)

A toy model of superposition squeezes ``n`` features into ``m`` hidden dimensions; feature ``i`` is
written along column ``W[:, i]`` of its weight. We know those directions, so an SAE trained on the
hidden activations ``h = W x`` can be graded: for every feature the toy model represents (column norm ≥
0.5), the best cosine between its direction and any SAE decoder row; the mean of those is the
**recovery** (1 = every feature found exactly). As ``n / m`` grows, features crowd into the same
dimensions and recovery falls: the picture behind "how many concepts fit in the space?".

The toy models come from :mod:`mechscope.labs.superposition.toy` (all ``n`` trained as one batch would
need equal ``n``, so each ratio is its own small run); the SAEs are :mod:`mechscope.sae`'s trainers on
an in-memory :class:`~mechscope.sae.train.TensorSource`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.labs.superposition.config import RecoveryConfig, ToyConfig

REPRESENTED = 0.5
"""A feature counts as represented by the toy model when its column norm is at least this."""


@dataclass
class RecoveryRow:
    n: int
    m: int
    represented: int
    """Features the toy model represents (column norm ≥ 0.5)."""
    recovery: float
    """Mean over represented features of the best cosine with an SAE decoder row."""
    cosines: list[float]
    """Each represented feature's best cosine."""
    sae_fvu: float
    sae_l0: float
    seconds: float

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.n / self.m}


@dataclass
class Recovery:
    config: RecoveryConfig
    rows: list[RecoveryRow]

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "rows": [r.to_dict() for r in self.rows]}

    def table(self) -> str:
        lines = [f"{'n':>5} {'n/m':>5} {'represented':>12} {'recovery':>9} {'min cos':>8} {'SAE FVU':>8} {'L0':>5}"]
        for r in self.rows:
            lines.append(f"{r.n:>5} {r.n / r.m:>5.0f} {r.represented:>12} {r.recovery:>9.3f} "
                         f"{min(r.cosines, default=float('nan')):>8.3f} {r.sae_fvu:>8.3f} {r.sae_l0:>5.1f}")  # fmt: skip
        return "\n".join(lines)


def best_cosines(directions: Float[Tensor, "f m"], decoder: Float[Tensor, "w m"]) -> Float[Tensor, " f"]:
    """For each direction, the largest cosine with any decoder row."""
    a = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = decoder / decoder.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (a @ b.t()).max(dim=1).values


def recover(cfg: RecoveryConfig = RecoveryConfig(), progress: bool = False) -> Recovery:
    """Train one toy model per ratio, then an SAE on its hidden activations; grade the SAE."""
    from mechscope.labs.superposition.toy import sample_batch, train
    from mechscope.sae.config import SAEConfig, SAETrainConfig
    from mechscope.sae.train import TensorSource, train_saes

    rows = []
    for ratio in cfg.ratios:
        t0 = time.perf_counter()
        n = ratio * cfg.m
        toy = train(ToyConfig(n=n, m=cfg.m, density=cfg.density, importance=1.0, instances=1, steps=cfg.toy_steps,
                              seed=cfg.seed), progress=progress)  # fmt: skip
        W = toy.W[0]  # [m, n]
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        xs = []
        toy_cfg = ToyConfig(n=n, m=cfg.m, density=cfg.density, instances=1, batch=8192, seed=cfg.seed)
        while sum(x.shape[0] for x in xs) < cfg.rows:
            x = sample_batch(toy_cfg, gen)[0]  # [batch, n]
            xs.append(x[x.abs().sum(1) > 0])
        x = torch.cat(xs)[: cfg.rows]
        h = x @ W.t()  # [rows, m]: the hidden activations
        k = max(1, round(n * cfg.density))
        sae_cfg = SAEConfig(arch=cfg.arch, d_in=cfg.m, width=cfg.width_factor * n, k=k)
        tc = SAETrainConfig(tokens=cfg.sae_tokens, batch_tokens=1024, lr=1e-2, seed=cfg.seed, log_every=50,
                            l1_coeff=0.3, l0_coeff=0.05)  # fmt: skip
        (res,) = train_saes(TensorSource(h), [sae_cfg], tc, progress=progress)
        norms = W.norm(dim=0)
        kept = norms >= REPRESENTED
        cos = best_cosines(W.t()[kept], res.sae.W_dec.detach())
        last = res.history[-1] if res.history else {}
        rows.append(RecoveryRow(n, cfg.m, int(kept.sum()), float(cos.mean()) if cos.numel() else float("nan"),
                                [round(float(c), 4) for c in cos], float(last.get("fvu", float("nan"))),
                                float(last.get("l0", float("nan"))), time.perf_counter() - t0))  # fmt: skip
    return Recovery(cfg, rows)


def plot(rec: Recovery, path):
    """Recovery against features per dimension, with each feature's best cosine as a dot."""
    from mechscope.labs.superposition.figures import new_figure, save

    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for r in rec.rows:
        ax.scatter([r.n / r.m] * len(r.cosines), r.cosines, s=8, alpha=0.35, color="#4C72B0")
    ax.plot([r.n / r.m for r in rec.rows], [r.recovery for r in rec.rows], "o-", color="#C44E52", label="mean best cosine")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("features per hidden dimension (n / m)")
    ax.set_ylabel("best cosine with an SAE latent")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{rec.config.arch} SAEs on toy models (m = {rec.config.m}, density {rec.config.density})")
    ax.legend(loc="lower left")
    return save(fig, path)
