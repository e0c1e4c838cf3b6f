"""Sparse inputs of the toy models, drawn by their present entries only.

Every entry of an instance's ``[batch, n]`` input is present with probability p (the feature density) and
then uniform in [0, 1). One uniform per entry costs ``batch · n`` draws from torch's serial CPU generator
(~5 ns a number: 0.5 ms a step for 20 instances of 5 × 1024, more than all the model's arithmetic).
:class:`SparseSampler` draws only what is there:

- **where**: the gaps between present entries of i.i.d. Bernoulli(p) trials are Geometric(p),
  ``gap = 1 + floor(log(1 - u) / log(1 - p))`` for u uniform in [0, 1), in float64; the positions are
  their running sum over the flattened ``[batch, n]`` block (row-major, so position // n is the example,
  position % n the feature). About ``batch · n · p`` gaps plus eight standard deviations cover the block;
  in the rare case they do not, more are drawn and appended (so the law is exactly Bernoulli, never
  truncated);
- **what**: one uniform value per present entry.

Above :data:`SPARSE_MAX_DENSITY` (sweeps reach density 1) it falls back to one uniform per entry.

:meth:`SparseSampler.compact` returns the batch in the training layout with the **empty examples left
out**: at density 0.05 and n = 5, 77% of examples have no feature, and every such example has the same
output ReLU(b), so the training step handles them in closed form (times their count) instead of running
them through the model. :meth:`SparseSampler.dense` returns the ordinary ``[inst, batch, n]`` batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


SPARSE_MAX_DENSITY = 0.25
"""Above this (largest) density the sampler draws one uniform per entry and keeps every example: the
gaps then cost more (float64 draws, a dozen passes over them) than they save."""


@dataclass
class CompactBatch:
    """A batch with its empty examples set aside: ``x`` holds every non-empty example of every instance as a
    column (instances with fewer non-empty examples are padded with empty columns), ``empty`` counts the
    examples of each instance that are left out; all of them are all-zero inputs."""

    x: Float[Tensor, "inst n cols"]
    empty: int
    """batch - cols: the same for every instance (padding columns are empty examples too). -1 when some
    instance has no empty example at all: the one extra column is then an empty example counted once too
    often, which the step subtracts (the arithmetic is exact either way)."""


class SparseSampler:
    """Draws sparse toy inputs for ``instances`` models of ``n`` features, ``batch`` examples per step.

    ``density`` is a float or an ``[instances]`` tensor (sweeps give each instance its own density).
    """

    def __init__(self, instances: int, n: int, batch: int, density: float | Tensor, generator: torch.Generator):
        self.instances, self.n, self.batch, self.generator = instances, n, batch, generator
        self.total = n * batch
        p = torch.as_tensor(density, dtype=torch.float64).reshape(-1, 1)  # [1 or inst, 1]
        p_max = float(p.max())
        # dense features (sweeps reach density 1): one uniform per entry is cheaper than the gaps
        self.sparse = p_max <= SPARSE_MAX_DENSITY
        self.p = p.to(torch.float32)[:, :, None]  # [1 or inst, 1, 1]
        mean = self.total * p_max
        # positions of present entries up to block end: Binomial(total, p) of them; 8 sd + 16 spare makes a
        # second draw a ~1e-15 event. total + 1 gaps always reach past the block (every gap is >= 1).
        self.draws = min(self.total + 1, math.ceil(mean + 8 * math.sqrt(mean * (1 - p_max)) + 16))
        self.scale = 1.0 / torch.log1p(-p)  # [1 or inst, 1]; -0.0 at p = 1: every gap is then 1
        self.offsets = torch.arange(self.draws, dtype=torch.float64)

    def positions(self) -> Float[Tensor, "inst k"]:
        """Sorted float64 positions of the present entries in each instance's flattened ``[batch, n]`` block,
        continued past its end (the last one of every row is >= batch · n; those past the end are unused)."""
        pos = self._gaps_cumsum(None)
        while True:
            # the one host sync of a step: does every row reach past the block?
            if float(pos[:, -1].min()) >= self.total:
                return pos
            pos = torch.cat([pos, self._gaps_cumsum(pos[:, -1:])], dim=1)  # pragma: no cover (p ~ 1e-15)

    def _gaps_cumsum(self, start: Tensor | None) -> Tensor:
        u = torch.rand(self.instances, self.draws, dtype=torch.float64, generator=self.generator)
        gaps = u.neg_().log1p_().mul_(self.scale).floor_()  # gap - 1, Geometric(p) - 1
        pos = gaps.cumsum_(1).add_(self.offsets)  # sum of (gap - 1) + index = sum of gaps - 1
        return pos if start is None else pos.add_(start + 1)

    def _uniform_per_entry(self) -> Float[Tensor, "inst n batch"]:
        """The dense draw (density above :data:`SPARSE_MAX_DENSITY`): one uniform u per entry, present when
        u < p, and then u / p is uniform in [0, 1)."""
        u = torch.rand(self.instances, self.n, self.batch, generator=self.generator)
        x = u.div_(self.p)
        return x.masked_fill_(x >= 1.0, 0.0)

    def dense(self) -> Float[Tensor, "inst batch n"]:
        """One batch as ``[instances, batch, n]``."""
        if not self.sparse:
            return self._uniform_per_entry().transpose(1, 2)
        pos = self.positions().clamp_max_(self.total).long()  # entries past the block land on a spare slot
        vals = torch.rand(pos.shape, generator=self.generator)
        x = torch.zeros(self.instances, self.total + 1).scatter_(1, pos, vals)
        return x[:, : self.total].reshape(self.instances, self.batch, self.n)

    def compact(self) -> CompactBatch:
        """One batch in the training layout, empty examples left out (see :class:`CompactBatch`); above
        :data:`SPARSE_MAX_DENSITY` every example is kept (few are empty there)."""
        if not self.sparse:
            return CompactBatch(self._uniform_per_entry(), 0)
        n = self.n
        pos = self.positions().clamp_max_(self.total)  # past the block: example `batch`, feature 0
        example = torch.div(pos, n, rounding_mode="floor")
        feature = pos.sub_(example, alpha=n)  # pos is not needed any more
        # slot (1-based) of each entry's example among the non-empty examples of its instance: it grows by
        # one wherever the example changes. Entries past the block share one last slot (K_i + 1).
        step = torch.diff(example, dim=1, prepend=example.new_full((self.instances, 1), -1.0))
        slot = (step > 0).cumsum(1)  # int64
        cols = int(slot[:, -1].max())  # max_i K_i + 1 (a host sync, after positions' one)
        index = torch.add(slot, feature.long(), alpha=cols).sub_(1)  # feature * cols + slot - 1
        vals = torch.rand(index.shape, generator=self.generator)
        x = torch.zeros(self.instances, n * cols).scatter_(1, index, vals)
        x.scatter_(1, index[:, -1:], 0.0)  # the spare slot: its column is an empty example again
        return CompactBatch(x.view(self.instances, n, cols), self.batch - cols)
