"""The modular arithmetic dataset: all p*p pairs "a b =", their answers, and a seeded train/test split.

Pairs are enumerated in row-major order, index = a * p + b, so any per-pair tensor reshapes to
``[p, p]`` with a on the first axis and b on the second. That is the layout every analysis uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from mechscope.labs.grokking.config import GrokConfig


def all_pairs(p: int) -> tuple[Int[Tensor, " batch"], Int[Tensor, " batch"]]:
    """Every (a, b) with a, b in 0..p-1, row-major (index = a * p + b)."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    return a, b


def answers(a: Int[Tensor, " batch"], b: Int[Tensor, " batch"], p: int, operation: str) -> Int[Tensor, " batch"]:
    """(a op b) mod p."""
    if operation == "add":
        return (a + b) % p
    if operation == "subtract":
        return (a - b) % p
    if operation == "multiply":
        return (a * b) % p
    raise ValueError(f"unknown operation {operation!r}")


def tokens(a: Int[Tensor, " batch"], b: Int[Tensor, " batch"], p: int) -> Int[Tensor, "batch 3"]:
    """The token sequences "a b =" ("=" is token p)."""
    return torch.stack([a, b, torch.full_like(a, p)], dim=1)


def train_mask(p: int, frac: float, seed: int) -> Bool[Tensor, " batch"]:
    """Which of the p*p pairs are in the training set: ``int(frac * p * p)`` pairs drawn by a
    torch.Generator seeded with ``seed`` (independent of the initialisation's generator)."""
    n = p * p
    gen = torch.Generator().manual_seed(1_000_003 + seed)
    order = torch.randperm(n, generator=gen)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[: int(frac * n)]] = True
    return mask


@dataclass(frozen=True)
class Dataset:
    """All pairs of one run and its split(s). With several seeds, ``is_train`` has one row per seed."""

    p: int
    """Modulus."""
    a: Int[Tensor, " batch"]
    """First operand of every pair (row-major)."""
    b: Int[Tensor, " batch"]
    """Second operand of every pair."""
    labels: Int[Tensor, " batch"]
    """(a op b) mod p."""
    is_train: Bool[Tensor, "seed batch"]
    """Training split per seed."""

    @classmethod
    def build(cls, cfg: GrokConfig) -> Dataset:
        p = cfg.model.p
        a, b = all_pairs(p)
        masks = torch.stack([train_mask(p, cfg.frac_train, s) for s in cfg.seeds])
        return cls(p=p, a=a, b=b, labels=answers(a, b, p, cfg.operation), is_train=masks)

    def split(self, seed_index: int, train: bool) -> Int[Tensor, " n"]:
        """Indices (into all pairs) of the train or test set of one seed, in ascending order."""
        mask = self.is_train[seed_index] if train else ~self.is_train[seed_index]
        return torch.nonzero(mask).squeeze(1)

    def stacked_split(self, train: bool) -> Int[Tensor, "seed n"]:
        """Train (or test) indices of every seed; each seed has the same count."""
        return torch.stack([self.split(i, train) for i in range(self.is_train.shape[0])])
