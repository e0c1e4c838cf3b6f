"""A model built by hand to implement the clock algorithm (no training).

Used by tests as ground truth for the analysis, and handy for teaching: it shows that the mechanism
the paper found fits in the architecture exactly.

Construction (one head, frequencies ``w_k = 2 pi k / p``):

* embedding: token x writes ``cos(w_k x), sin(w_k x)`` for each key frequency into its own dims; "="
  at position 2 writes a flag dim;
* attention: every head's query of "=" reads the flag and the key of "=" reads it too with a large
  negative product, so "=" attends 1/2 to a and 1/2 to b; OV copies the Fourier dims with gain 2, so the MLP
  reads ``cos(w a) + cos(w b)`` and ``sin(w a) + sin(w b)``;
* neuron (k, j) with phase ``phi_j = 2 pi j / n`` has pre-activation
  ``cos(w a + phi_j) + cos(w b + phi_j) = 2 cos(w (a - b) / 2) cos(w (a + b) / 2 + phi_j)``;
* ``W_L = W_out @ W_U`` maps neuron (k, j) to logit c with weight ``cos(2 phi_j + w c)``. Summed over
  the phases, ReLU(r cos(t + phi)) cos(2 phi + psi) integrates to ``|r| / (3 pi) cos(2 t - psi)``, so
  the logit of c is ``sum_k A_k(a - b) cos(w_k (a + b - c))`` with ``A_k >= 0``: the clock algorithm.
"""

from __future__ import annotations

import math

import torch

from mechscope.errors import ConfigError
from mechscope.labs.grokking.config import GrokModelConfig
from mechscope.labs.grokking.model import Params, param_shapes


def clock_params(cfg: GrokModelConfig, freqs: list[int], scale: float = 10.0) -> Params:
    """Weights (seed axis of size 1, float32) of a model implementing the clock algorithm for
    a + b mod p at the given frequencies. ``scale`` multiplies the logits."""
    p, n_freq = cfg.p, len(freqs)
    if 2 * n_freq > cfg.n_heads * cfg.d_head:
        raise ConfigError(f"{cfg.n_heads} heads of {cfg.d_head} dims cannot carry {n_freq} frequencies")
    if 4 * n_freq + 1 > cfg.d_model:
        raise ConfigError(f"d_model={cfg.d_model} is too small for {n_freq} frequencies (needs {4 * n_freq + 1})")
    n_phase = cfg.d_mlp // n_freq
    if n_phase < 4:
        raise ConfigError(f"d_mlp={cfg.d_mlp} gives fewer than 4 neurons per frequency")
    W = {name: torch.zeros(shape, dtype=torch.float64) for name, shape in param_shapes(cfg).items()}
    x = torch.arange(p, dtype=torch.float64)
    flag = 4 * n_freq  # residual dim set only by "=" at position 2
    for i, k in enumerate(freqs):
        w = 2 * math.pi * k / p
        c_in, s_in, c_out, s_out = 4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3
        W["W_E"][:p, c_in] = torch.cos(w * x)
        W["W_E"][:p, s_in] = torch.sin(w * x)
        for slot, copy in ((2 * i, c_in), (2 * i + 1, s_in)):  # OV: identity on the input dims, gain 2
            head, j = slot // cfg.d_head, slot % cfg.d_head
            W["W_V"][head, copy, j] = 1.0
            W["W_O"][head, j, copy] = 2.0
        phases = 2 * math.pi * torch.arange(n_phase, dtype=torch.float64) / n_phase
        cols = slice(i * n_phase, (i + 1) * n_phase)
        # pre = cos(phi) (cos wa + cos wb) - sin(phi) (sin wa + sin wb)
        W["W_in"][c_in, cols] = torch.cos(phases)
        W["W_in"][s_in, cols] = -torch.sin(phases)
        # W_out W_U [n, c] = cos(2 phi) cos(wc) - sin(2 phi) sin(wc) = cos(2 phi + w c)
        W["W_out"][cols, c_out] = torch.cos(2 * phases)
        W["W_out"][cols, s_out] = -torch.sin(2 * phases)
        W["W_U"][c_out, :p] = scale * torch.cos(w * x) / n_phase
        W["W_U"][s_out, :p] = scale * torch.sin(w * x) / n_phase
    W["W_U"][:, p] = 0.0
    W["W_U"][flag, p] = -100.0  # never predict "="
    # "=" (position 2) sets the flag; its query and key both read it, and the score of "=" on itself
    # is very negative, so it attends equally to positions 0 and 1.
    W["W_pos"][2, flag] = 1.0
    W["W_Q"][:, flag, 0] = 1.0
    W["W_K"][:, flag, 0] = -60.0 * math.sqrt(cfg.d_head)
    return {name: t[None].to(torch.float32) for name, t in W.items()}
