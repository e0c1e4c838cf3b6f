"""The dataset: pair layout, answers and the seeded split."""

from __future__ import annotations

import torch

from mechscope.labs.grokking.config import GrokConfig, GrokModelConfig
from mechscope.labs.grokking.data import Dataset, all_pairs, answers, tokens, train_mask


def test_pairs_are_row_major():
    a, b = all_pairs(5)
    assert a.tolist()[:6] == [0, 0, 0, 0, 0, 1] and b.tolist()[:6] == [0, 1, 2, 3, 4, 0]
    assert tokens(a, b, 5)[7].tolist() == [1, 2, 5]


def test_answers():
    a, b = torch.tensor([3, 4, 6]), torch.tensor([5, 6, 2])
    assert answers(a, b, 7, "add").tolist() == [1, 3, 1]
    assert answers(a, b, 7, "subtract").tolist() == [5, 5, 4]
    assert answers(a, b, 7, "multiply").tolist() == [1, 3, 5]


def test_split_size_and_determinism():
    m1, m2, m3 = train_mask(113, 0.3, 0), train_mask(113, 0.3, 0), train_mask(113, 0.3, 1)
    assert int(m1.sum()) == 3830
    assert torch.equal(m1, m2) and not torch.equal(m1, m3)


def test_stacked_splits_have_one_row_per_seed():
    cfg = GrokConfig(model=GrokModelConfig(p=17), n_seeds=3, seed=4)
    ds = Dataset.build(cfg)
    assert ds.is_train.shape == (3, 289)
    assert torch.equal(ds.is_train[1], train_mask(17, 0.3, 5))
    idx = ds.stacked_split(True)
    assert idx.shape == (3, int(0.3 * 289))
    assert torch.equal(ds.labels[idx[0]], (ds.a[idx[0]] + ds.b[idx[0]]) % 17)
