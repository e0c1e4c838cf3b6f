"""Per-layer activation differences between two models on the same tokens, accumulated on the fly.

For every batch of prompts each model runs one forward that records the chosen hooks of every layer
and stops after the last of them (``model.collect``: no final norm, no unembedding). The difference
``Δ = tuned − base`` is reduced at once into small running sums; no activation outlives its batch:

- ``norm_by_layer[l]``: mean ``‖Δ‖`` over every real position but position 0 (BOS);
- ``rel_norm[l]``: mean over the same positions of ``‖Δ‖ / ‖base‖``;
- ``norm_by_pos[l, p]``: mean ``‖Δ‖`` over the prompts that reach position ``p`` (BOS included, p = 0);
- ``mean_diff[l]``: the mean of ``Δ`` over every real position but BOS (the steering vector, the lens);
- ``base_rms[l]``: mean RMS of the base residual (``‖x‖/√d``) at those positions (the lens' scale).

Position 0 is left out of the means because Gemma's residual at BOS is ~17× larger than elsewhere and
a fine-tune barely touches it; the per-position rows keep it so the picture shows it.

``sink(layer_acts_base, layer_acts_tuned, ids, keep)`` (optional) receives one layer's activations per
batch (``keep``: bool ``[batch, pos]`` of real non-BOS positions): the crosscoder harvest reads them
from the same forwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from mechscope.errors import ConfigError

COMPONENTS = ("resid_post", "attn_out", "mlp_out")
"""Hooks whose difference can be measured per layer (``blocks.{l}.hook_<component>``)."""


@dataclass(frozen=True)
class DiffConfig:
    """Which activations a diff compares and how prompts are batched."""

    layers: tuple[int, ...] | None = None
    """Layers to compare (None = every layer)."""
    components: tuple[str, ...] = ("resid_post",)
    """Hooks per layer: resid_post always, attn_out and/or mlp_out in addition (their mean norms only)."""
    seq_len: int = 64
    """Prompts are cut to this many tokens (BOS included)."""
    batch_size: int = 16
    """Prompts per forward."""

    def __post_init__(self):
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
            if not self.layers or not all(isinstance(x, int) for x in self.layers):
                raise ConfigError(f"layers must be a non-empty list of integers, got {self.layers!r}")
        object.__setattr__(self, "components", tuple(dict.fromkeys(("resid_post", *self.components))))
        bad = [c for c in self.components if c not in COMPONENTS]
        if bad:
            raise ConfigError(f"unknown component {bad[0]!r}: choose from {', '.join(COMPONENTS)}")
        for name in ("seq_len", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.seq_len < 2:
            raise ConfigError("seq_len must be at least 2 (BOS and one token)")

    def resolve_layers(self, n_layers: int) -> list[int]:
        if self.layers is None:
            return list(range(n_layers))
        for x in self.layers:
            if not 0 <= x < n_layers:
                raise ConfigError(f"layer {x} out of range: the models have {n_layers} layers (0..{n_layers - 1})")
        return sorted(set(self.layers))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else None
        d["components"] = list(self.components)
        return d


@dataclass
class DiffStats:
    """The reduced differences (see the module docstring); rows follow ``layers``."""

    layers: list[int]
    norm_by_layer: Float[Tensor, " layer"]
    base_norm_by_layer: Float[Tensor, " layer"]
    rel_norm: Float[Tensor, " layer"]
    norm_by_pos: Float[Tensor, "layer pos"]
    pos_count: Int[Tensor, " pos"]
    mean_diff: Float[Tensor, "layer d_model"]
    base_rms: Float[Tensor, " layer"]
    component_norms: dict[str, Float[Tensor, " layer"]]
    n_prompts: int
    n_tokens: int
    """Real positions but BOS that the means average over."""


Sink = Callable[[Tensor, Tensor, Tensor, Tensor], None]


def hook_name(layer: int, component: str) -> str:
    return f"blocks.{layer}.hook_{component}"


def diff_activations(base, tuned, seqs: list[list[int]], cfg: DiffConfig = DiffConfig(), *, sink: Sink | None = None,
                     sink_layer: int | None = None, progress: bool = True) -> DiffStats:  # fmt: skip
    """Run both models over ``seqs`` (token ids, BOS first; see :mod:`mechscope.diff.pair`) and reduce
    ``tuned − base`` per layer and position. NaN or inf in either model raises one line."""
    from mechscope.diff.pair import batches, pad_id
    from mechscope.errors import CacheError

    layers = cfg.resolve_layers(base.cfg.n_layers)
    if sink is not None and sink_layer not in layers:
        layers = sorted({*layers, sink_layer})
    names = [hook_name(x, c) for x in layers for c in cfg.components]
    n_l, d, p_max = len(layers), base.cfg.d_model, max(len(s) for s in seqs)
    norm_sum = torch.zeros(n_l, dtype=torch.float64)
    base_sum = torch.zeros(n_l, dtype=torch.float64)
    rel_sum = torch.zeros(n_l, dtype=torch.float64)
    rms_sum = torch.zeros(n_l, dtype=torch.float64)
    pos_sum = torch.zeros(n_l, p_max, dtype=torch.float64)
    pos_count = torch.zeros(p_max, dtype=torch.int64)
    mean_sum = torch.zeros(n_l, d, dtype=torch.float64)  # small [layer, d_model] sums: float64 is free here
    comp_sum = {c: torch.zeros(n_l, dtype=torch.float64) for c in cfg.components if c != "resid_post"}
    n_tok = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seqs), desc="mechscope: diff", unit="prompt", leave=False)
    with torch.no_grad():
        for batch in batches(seqs, pad_id(base), cfg.batch_size):
            cb = base.collect(batch, names)
            ct = tuned.collect(batch, names)
            mask: Bool[Tensor, "batch pos"] = batch.attention_mask.bool().to(base.device)
            keep = mask.clone()
            keep[:, 0] = False
            p = mask.shape[1]
            pos_count[:p] += mask.sum(0).cpu()
            n_tok += int(keep.sum())
            for j, layer in enumerate(layers):
                a = cb[hook_name(layer, "resid_post")]
                t = ct[hook_name(layer, "resid_post")]
                if not (torch.isfinite(a).all() and torch.isfinite(t).all()):
                    raise CacheError(f"a model produced NaN or infinite activations at layer {layer}: its weights "
                                     "may be damaged; `mechscope check --full` checks a converted cache")  # fmt: skip
                delta = t - a  # [b, p, d]
                dn = delta.norm(dim=-1)  # [b, p]
                an = a.norm(dim=-1)
                pos_sum[j, :p] += (dn * mask).sum(0).double().cpu()
                norm_sum[j] += float(dn[keep].sum())
                base_sum[j] += float(an[keep].sum())
                rel_sum[j] += float((dn / an.clamp_min(1e-12))[keep].sum())
                rms_sum[j] += float(an[keep].sum()) / d**0.5
                mean_sum[j] += (delta * keep[..., None]).sum((0, 1)).double().cpu()
                for c, acc in comp_sum.items():
                    acc[j] += float((ct[hook_name(layer, c)] - cb[hook_name(layer, c)]).norm(dim=-1)[keep].sum())
                if sink is not None and layer == sink_layer:
                    sink(a, t, batch.input_ids, keep)
            if bar is not None:
                bar.update(batch.input_ids.shape[0])
    if bar is not None:
        bar.close()
    if n_tok == 0:
        raise ConfigError("the prompts have no token after BOS: give prompts of at least one token")
    per = max(n_tok, 1)
    return DiffStats(
        layers=layers,
        norm_by_layer=(norm_sum / per).float(),
        base_norm_by_layer=(base_sum / per).float(),
        rel_norm=(rel_sum / per).float(),
        norm_by_pos=(pos_sum / pos_count.clamp_min(1)).float(),
        pos_count=pos_count,
        mean_diff=(mean_sum / per).float(),
        base_rms=(rms_sum / per).float(),
        component_norms={c: (v / per).float() for c, v in comp_sum.items()},
        n_prompts=len(seqs),
        n_tokens=n_tok,
    )
