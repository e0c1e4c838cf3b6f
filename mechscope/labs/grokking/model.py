"""The one-layer transformer of the grokking paper, written as plain tensors with a seed axis.

Weights are a dict of tensors named and laid out as in TransformerLens (``W_E[d_vocab, d_model]``,
``W_Q[n_heads, d_model, d_head]``, ``W_in[d_model, d_mlp]`` ...), each with a leading ``seed`` axis so
several independently initialised models train in one process (stacked weights). ``seed`` has size 1
for a single run.

``reference_forward`` is the plain formulation (every position, full attention); the training fast
path in ``fast.py`` is tested equal to it. Architecture (Nanda et al. 2023): token + learned position
embedding, one attention layer (4 heads x 32, no biases, causal), one ReLU MLP (with biases), no
LayerNorm, untied unembedding.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechscope.labs.grokking.config import GrokModelConfig

Params = dict[str, Tensor]

# Parameter names in a fixed order (the order of the optimizer state and of checkpoints).
PARAM_NAMES: tuple[str, ...] = (
    "W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "b_in", "W_out", "b_out", "W_U",
)  # fmt: skip


def param_shapes(cfg: GrokModelConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every weight of one model (without the seed axis)."""
    d, h, e, m = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp
    return {
        "W_E": (cfg.d_vocab, d),
        "W_pos": (cfg.n_ctx, d),
        "W_Q": (h, d, e),
        "W_K": (h, d, e),
        "W_V": (h, d, e),
        "W_O": (h, e, d),
        "W_in": (d, m),
        "b_in": (m,),
        "W_out": (m, d),
        "b_out": (d,),
        "W_U": (d, cfg.d_vocab_out),
    }


def init_params(cfg: GrokModelConfig, seeds: list[int], dtype: torch.dtype = torch.float32) -> Params:
    """Initialise one model per seed, stacked on a leading ``seed`` axis.

    As in the paper's code: every matrix is ``randn / sqrt(d_model)`` except the unembedding,
    ``randn / sqrt(d_vocab)``; biases start at zero. Each seed draws from its own torch.Generator, so
    seed s gives the same weights whether it is trained alone or stacked with others.
    """
    shapes = param_shapes(cfg)
    per_seed: list[Params] = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        weights: Params = {}
        for name in PARAM_NAMES:
            shape = shapes[name]
            if name.startswith("b_"):
                weights[name] = torch.zeros(shape, dtype=torch.float64)
                continue
            scale = math.sqrt(cfg.d_vocab) if name == "W_U" else math.sqrt(cfg.d_model)
            weights[name] = torch.randn(shape, generator=gen, dtype=torch.float64) / scale
        per_seed.append(weights)
    return {name: torch.stack([w[name] for w in per_seed]).to(dtype) for name in PARAM_NAMES}


def select_seed(params: Params, index: int) -> Params:
    """The weights of one seed, keeping a seed axis of size 1."""
    return {name: w[index : index + 1] for name, w in params.items()}


def reference_forward(
    params: Params,
    tokens: Int[Tensor, "seed batch pos"],
    cache: dict[str, Tensor] | None = None,
) -> Float[Tensor, "seed batch pos d_vocab"]:
    """Plain forward pass over every position. If ``cache`` is a dict, activations are stored in it
    under the canonical hook names (``blocks.0.mlp.hook_post`` ...)."""
    n_seeds = params["W_E"].shape[0]
    n_pos = tokens.shape[-1]
    d_head = params["W_Q"].shape[-1]
    seed_index = torch.arange(n_seeds, device=tokens.device)[:, None, None]
    embed = params["W_E"][seed_index, tokens]  # [seed batch pos d_model]
    resid_pre = embed + params["W_pos"][:, None, :n_pos]

    q = torch.einsum("sbpd,shde->sbphe", resid_pre, params["W_Q"])
    k = torch.einsum("sbpd,shde->sbphe", resid_pre, params["W_K"])
    v = torch.einsum("sbpd,shde->sbphe", resid_pre, params["W_V"])
    scores = torch.einsum("sbqhe,sbkhe->sbhqk", q, k) / math.sqrt(d_head)  # [seed batch head q k]
    causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=tokens.device).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    pattern = scores.softmax(dim=-1)
    z = torch.einsum("sbhqk,sbkhe->sbqhe", pattern, v)
    attn_out = torch.einsum("sbqhe,shed->sbqd", z, params["W_O"])
    resid_mid = resid_pre + attn_out

    pre = torch.einsum("sbpd,sdm->sbpm", resid_mid, params["W_in"]) + params["b_in"][:, None, None]
    post = torch.relu(pre)
    mlp_out = torch.einsum("sbpm,smd->sbpd", post, params["W_out"]) + params["b_out"][:, None, None]
    resid_post = resid_mid + mlp_out
    logits = torch.einsum("sbpd,sdv->sbpv", resid_post, params["W_U"])

    if cache is not None:
        cache.update(
            {
                "hook_embed": embed,
                "blocks.0.hook_resid_pre": resid_pre,
                "blocks.0.attn.hook_q": q,
                "blocks.0.attn.hook_k": k,
                "blocks.0.attn.hook_v": v,
                "blocks.0.attn.hook_pattern": pattern,
                "blocks.0.attn.hook_z": z,
                "blocks.0.hook_attn_out": attn_out,
                "blocks.0.hook_resid_mid": resid_mid,
                "blocks.0.mlp.hook_pre": pre,
                "blocks.0.mlp.hook_post": post,
                "blocks.0.hook_mlp_out": mlp_out,
                "blocks.0.hook_resid_post": resid_post,
            }
        )
    return logits


def loss_and_accuracy(
    logits: Float[Tensor, "seed batch d_vocab"], labels: Int[Tensor, "seed batch"]
) -> tuple[Float[Tensor, " seed"], Float[Tensor, " seed"]]:
    """Mean cross-entropy per seed, computed in float64 as in the paper (float32 log-softmax
    underflows on confident predictions), and accuracy per seed."""
    logprobs = logits.to(torch.float64).log_softmax(dim=-1)
    correct = logprobs.gather(-1, labels[..., None]).squeeze(-1)
    loss = -correct.mean(dim=-1)
    acc = (logits.argmax(dim=-1) == labels).to(torch.float64).mean(dim=-1)
    return loss, acc
