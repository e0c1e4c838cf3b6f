"""The toy model of superposition (Elhage et al. 2022), many instances trained at once.

    h  = W x            W: [m, n]     (n features squeezed into m dimensions)
    x' = ReLU(Wᵀ h + b) b: [n]

Inputs are sparse: each feature is 0 with probability 1 - density and uniform in [0, 1) otherwise.
The loss weighs feature i's squared error by its importance I_i = importance**i.

All instances form one batched model: W is ``[instances, m, n]`` and every step is a few batched
matmuls over the instance axis (``torch.bmm``), not a Python loop per instance. Adam is elementwise, so
each instance trains as it would alone, on its own data. The step is hand-written (toy_step.py:
closed-form gradients, Adam on one flat tensor) and draws only the present entries, leaving the empty
examples to a closed form (toy_data.py): 20 instances cost ~2.2x one, not ~20x.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.labs.superposition.config import ToyConfig
from mechscope.labs.superposition.toy_data import SparseSampler
from mechscope.labs.superposition.toy_step import FlatAdam, loss_and_grads
from mechscope.runtime import flush_denormals


@dataclass
class ToyModels:
    """Trained weights of a batch of toy models and how the training went."""

    config: ToyConfig
    W: Float[Tensor, "inst m n"]
    b: Float[Tensor, "inst n"]
    final_loss: Float[Tensor, " inst"]
    """Importance-weighted loss per instance, averaged over the last 100 steps."""
    seconds: float
    """Wall time of the training loop."""

    @property
    def importance(self) -> Float[Tensor, " n"]:
        return importance_weights(self.config)

    def forward(self, x: Float[Tensor, "inst batch n"]) -> Float[Tensor, "inst batch n"]:
        return forward(self.W, self.b, x)


def importance_weights(cfg: ToyConfig) -> Float[Tensor, " n"]:
    """I_i = importance**i, i = 0..n-1."""
    return cfg.importance ** torch.arange(cfg.n, dtype=torch.float32)


def forward(W: Float[Tensor, "inst m n"], b: Float[Tensor, "inst n"],
            x: Float[Tensor, "inst batch n"]) -> Float[Tensor, "inst batch n"]:  # fmt: skip
    """x' = ReLU(Wᵀ W x + b) for every instance at once."""
    return _forward_cols(W, b[:, :, None], x.transpose(1, 2)).transpose(1, 2)


def _forward_cols(W: Float[Tensor, "inst m n"], b: Float[Tensor, "inst n 1"],
                  x: Float[Tensor, "inst n batch"]) -> Float[Tensor, "inst n batch"]:  # fmt: skip
    """The training layout: inputs as columns, so every elementwise op runs along the batch (contiguous,
    vectorised) rather than along n = 5 features (measured 2x faster for 20 instances)."""
    h = torch.bmm(W, x)  # [inst, m, batch]
    return torch.relu(torch.baddbmm(b, W.transpose(1, 2), h))  # [inst, n, batch]


def sample_batch(cfg: ToyConfig, generator: torch.Generator, density: Float[Tensor, " inst"] | float | None = None,
                 ) -> Float[Tensor, "inst batch n"]:  # fmt: skip
    """Sparse inputs: each feature present with probability ``density`` (default ``cfg.density``), then
    uniform in [0, 1). ``density`` may vary by instance for sweeps (any shape with ``instances`` entries)."""
    p = cfg.density if density is None else density
    return SparseSampler(cfg.instances, cfg.n, cfg.batch, p, generator).dense()


def init_weights(cfg: ToyConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Xavier-normal W per instance (std sqrt(2 / (m + n))) and b = 0, as in the paper's notebook."""
    std = (2.0 / (cfg.m + cfg.n)) ** 0.5
    W = torch.randn(cfg.instances, cfg.m, cfg.n, generator=generator) * std
    return W, torch.zeros(cfg.instances, cfg.n)


def train(cfg: ToyConfig, *, density: Float[Tensor, " inst"] | None = None,
          importance: Float[Tensor, "inst n"] | None = None, progress: bool = False) -> ToyModels:  # fmt: skip
    """Train ``cfg.instances`` toy models together with Adam on fresh sparse batches.

    ``density`` ([instances]) and ``importance`` ([instances, n]) override the config per instance, which
    is how the sweeps train a whole grid as one batch. Subnormals are flushed (CPU) for the loop.

    The step is written by hand (:mod:`~mechscope.labs.superposition.toy_step`: closed-form gradients,
    Adam on one flat tensor; :mod:`~mechscope.labs.superposition.toy_data`: only the present entries are
    drawn and the empty examples are handled in closed form), the same code for any number of instances.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    W0, b0 = init_weights(cfg, gen)
    inst, m, n = cfg.instances, cfg.m, cfg.n
    # W and b side by side in one tensor, so Adam is a handful of kernels; W, b are views into it
    params = torch.cat([W0.reshape(inst, m * n), b0], dim=1)
    grads = torch.empty_like(params)
    W, b = params[:, : m * n].view(inst, m, n), params[:, m * n :, None]
    gW, gb = grads[:, : m * n].view(inst, m, n), grads[:, m * n :, None]
    imp = importance_weights(cfg)[None, :] if importance is None else importance  # [1 or inst, n]
    c = (2.0 / cfg.batch) * imp.to(torch.float32)[:, :, None]  # [1 or inst, n, 1]
    sampler = SparseSampler(inst, n, cfg.batch, cfg.density if density is None else density, gen)
    opt = FlatAdam(params)
    tail = max(1, min(100, cfg.steps // 10))
    recent = torch.zeros(inst)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc="toy models", unit="step", leave=False)
    start = time.perf_counter()
    with flush_denormals():
        for step in range(cfg.steps):
            in_tail = step >= cfg.steps - tail
            loss = loss_and_grads(W, b, sampler.compact(), c, gW, gb, with_loss=in_tail)
            # cosine decay to 0: the last steps average out the batch noise, so the geometry settles
            opt.step(grads, cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
            if loss is not None:
                recent += loss
            if bar is not None:
                bar.update(1)
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    return ToyModels(cfg, W.clone(), b[:, :, 0].clone(), recent / tail, seconds)
