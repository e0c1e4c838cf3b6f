"""Where a model's parameters live: embedding, attention, MLP, norms, unembedding, per layer and in total.

:func:`count_params` reads a loaded model: every parameter of ``model.hf`` once (a tied unembedding is
the embedding's tensor, so it is counted once, under ``embed``, and ``total == sum(p.numel())``).
Within a block, a parameter belongs to ``norms`` when its module is a norm (LayerNorm, RMSNorm, the q/k
norms), to ``attn`` when it sits under the attention module, to ``mlp`` under the MLP module; the
finer split (q, k, v, qkv, o; gate, up, down) comes from the projection's name.

:func:`published_params` builds the same table from a published shape without weights:
``gpt3-175b`` (Brown et al. 2020: 96 layers, d_model 12,288, d_mlp 49,152, 50,257 tokens, 2,048
positions, tied embeddings, biases and LayerNorms as GPT-2) — 604M per MLP matrix, two thirds of the
parameters in MLPs, as 3Blue1Brown counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mechscope.errors import ConfigError, suggest

COMPONENTS = ("embed", "attn", "mlp", "norms", "unembed")
PROJECTIONS = {
    "q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "c_attn": "qkv", "query_key_value": "qkv",
    "dense": "o", "gate_proj": "gate", "up_proj": "up", "down_proj": "down", "c_fc": "up", "dense_h_to_4h": "up",
    "dense_4h_to_h": "down",
}  # fmt: skip
"""Projection module names → the finer part they are (``c_proj`` depends on where it sits: o or down)."""


@dataclass
class ParamTable:
    """Parameter counts by component, by finer part and per layer."""

    name: str
    total: int
    by_component: dict[str, int]
    by_part: dict[str, int]
    """``attn.q``, ``attn.k``, ``attn.v``, ``attn.qkv``, ``attn.o``, ``mlp.gate``, ``mlp.up``, ``mlp.down`` ..."""
    layers: list[dict[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "total": self.total, "by_component": self.by_component, "by_part": self.by_part,
                "layers": self.layers, "notes": self.notes}  # fmt: skip

    def table(self) -> str:
        """Human table: components with shares, the finer parts, then one row per layer."""
        w = len(f"{self.total:,}")
        lines = [f"{self.name}: {self.total:,} parameters"]
        for comp in COMPONENTS:
            n = self.by_component[comp]
            lines.append(f"  {comp:<9} {n:>{w},}  {100 * n / max(self.total, 1):5.1f}%")
            for part, k in self.by_part.items():
                if part.startswith(comp + ".") and n:
                    lines.append(f"    {part:<11} {k:>{w},}")
        if self.layers:
            lines.append(f"  {'layer':<6} {'attn':>14} {'mlp':>14} {'norms':>10}")
            for row in self.layers:
                lines.append(f"  {row['layer']:<6} {row['attn']:>14,} {row['mlp']:>14,} {row['norms']:>10,}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _is_norm(module) -> bool:
    return "norm" in type(module).__name__.lower()


def _part(component: str, leaf: str, module_path: str) -> str:
    if leaf == "c_proj":  # GPT-2 uses c_proj for both the attention output and the MLP down projection
        return f"{component}.{'o' if component == 'attn' else 'down'}"
    return f"{component}.{PROJECTIONS.get(leaf, 'other')}"


def count_params(model) -> ParamTable:
    """Count every parameter of a loaded :class:`~mechscope.model.hooked.HookedModel` once."""
    a = model.adapter
    hf = model.hf
    modules = dict(hf.named_modules())
    attn_prefix = a.o_proj.rsplit(".", 1)[0] + "."  # self_attn. / attn. / attention.
    mlp_prefix = a.mlp_down.rsplit(".", 1)[0] + "."  # mlp.
    n_layers = model.cfg.n_layers
    layers = [{"layer": i, "attn": 0, "mlp": 0, "norms": 0} for i in range(n_layers)]
    comp = dict.fromkeys(COMPONENTS, 0)
    parts: dict[str, int] = {}
    roots = [(a.embed, "embed", "embed.tokens"), (a.pos_embed, "embed", "embed.positions"),
             (a.unembed, "unembed", "unembed.weight"), (a.final_norm, "norms", "norms.final")]
    for name, p in hf.named_parameters():  # shared (tied) tensors appear once, under their first name
        module_path = name.rsplit(".", 1)[0]
        n = p.numel()
        component = part = None
        for path, c, root_part in roots:
            if path and (module_path == path or module_path.startswith(path + ".")):
                component, part = c, root_part
                break
        if component is None and module_path.startswith(a.layers + "."):
            idx, rel = module_path[len(a.layers) + 1:].split(".", 1)
            leaf = rel.rsplit(".", 1)[-1]
            if _is_norm(modules[module_path]):
                component, part = "norms", "norms.blocks"
            elif rel.startswith(attn_prefix) or rel + "." == attn_prefix:
                component = "attn"
                part = _part(component, leaf, rel)
            elif rel.startswith(mlp_prefix):
                component = "mlp"
                part = _part(component, leaf, rel)
            if component is not None:
                layers[int(idx)][component] += n
        if component is None:
            raise ConfigError(f"parameter {name} of {model.name} belongs to no known component")
        comp[component] += n
        parts[part] = parts.get(part, 0) + n
    total = sum(comp.values())
    notes = []
    if getattr(hf.config, "tie_word_embeddings", False):
        notes.append("the unembedding is tied to the embedding: counted once, under embed")
    return ParamTable(model.name, total, comp, dict(sorted(parts.items())), layers, notes)


@dataclass(frozen=True)
class PublishedShape:
    """A published architecture (GPT-2 style: biases, two LayerNorms per block, learned positions)."""

    name: str
    n_layers: int
    d_model: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    tied: bool = True


PUBLISHED = {
    "gpt3-175b": PublishedShape("gpt3-175b", n_layers=96, d_model=12_288, d_mlp=49_152, d_vocab=50_257, n_ctx=2_048),
    "gpt2-small": PublishedShape("gpt2-small", n_layers=12, d_model=768, d_mlp=3_072, d_vocab=50_257, n_ctx=1_024),
}
"""Shapes whose table ``mechscope info --params --config NAME`` prints without weights."""


def published_params(name: str) -> ParamTable:
    """The parameter table of a published shape (``gpt3-175b``, ``gpt2-small``); unknown names: one line."""
    if name not in PUBLISHED:
        raise ConfigError(f"unknown --config {name!r}{suggest(name, PUBLISHED)}: choose one of {', '.join(PUBLISHED)}")
    s = PUBLISHED[name]
    d, f = s.d_model, s.d_mlp
    attn = {"attn.qkv": 3 * d * d + 3 * d, "attn.o": d * d + d}
    mlp = {"mlp.up": d * f + f, "mlp.down": f * d + d}
    norms_layer = 2 * 2 * d  # two LayerNorms (weight + bias)
    layer = {"attn": sum(attn.values()), "mlp": sum(mlp.values()), "norms": norms_layer}
    embed = s.d_vocab * d + s.n_ctx * d
    unembed = 0 if s.tied else s.d_vocab * d
    comp = {"embed": embed, "attn": s.n_layers * layer["attn"], "mlp": s.n_layers * layer["mlp"],
            "norms": s.n_layers * norms_layer + 2 * d, "unembed": unembed}  # fmt: skip
    parts = {"embed.tokens": s.d_vocab * d, "embed.positions": s.n_ctx * d,
             **{k: s.n_layers * v for k, v in {**attn, **mlp}.items()}}  # fmt: skip
    total = sum(comp.values())
    per_matrix = d * f
    notes = [
        f"one MLP matrix is {d:,} × {f:,} = {per_matrix:,} weights ({per_matrix / 1e6:.0f}M); "
        f"the MLPs hold {100 * comp['mlp'] / total:.1f}% of all parameters",
        "from the published shape, no weights; the unembedding is tied to the embedding (counted once, under embed)",
    ]
    if s.tied:
        video = total - comp["norms"] - s.n_ctx * d + s.d_vocab * d - s.n_layers * (4 * d + f + d)
        notes.append(f"3Blue1Brown's tally (unembedding counted separately; no biases, norms or positions): {video:,}")
    layers = [{"layer": i, **layer} for i in range(s.n_layers)]
    return ParamTable(name, total, comp, parts, layers, notes)
