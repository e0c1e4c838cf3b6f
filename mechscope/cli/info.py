"""``mechscope info``: what a model is and which hooks it exposes."""

from __future__ import annotations

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model


def register(subparsers) -> None:
    p = add_parser(subparsers, "info", "Show a model's shape, hook names with shapes, load time and cache path.",
                   "  mechscope info\n  mechscope info --json | jq .hooks\n  mechscope info --model ./my-hf-dir\n"
                   "  mechscope info --params                 # where the parameters live, per component and layer\n"
                   "  mechscope info --params --config gpt3-175b   # from the published shape, no weights")  # fmt: skip
    add_model_arg(p)
    add_json_arg(p)
    p.add_argument("--params", action="store_true",
                   help="parameter counts by component (embed, attn, mlp, norms, unembed), per layer and in total")
    p.add_argument("--config", default=None, metavar="NAME",
                   help="with --params: count a published shape instead of a loaded model (gpt3-175b, gpt2-small)")
    p.set_defaults(func=run)


def describe(model) -> dict:
    c = model.cfg
    return {
        "model": model.name, "architecture": c.architecture, "model_type": c.model_type, "n_layers": c.n_layers,
        "d_model": c.d_model, "d_mlp": c.d_mlp, "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads,
        "d_head": c.d_head, "d_vocab": c.d_vocab, "n_ctx": c.n_ctx, "logit_softcap": c.logit_softcap,
        "device": str(model.device), "dtype": str(model.dtype).removeprefix("torch."),
        "load_seconds": round(model.load_seconds or 0.0, 3), "cache_path": model.cache_path,
        "fingerprint": model.fingerprint,
        "hooks": {name: list(shape) for name, shape in model.hook_shapes().items()},
    }  # fmt: skip


def params(args) -> int:
    from mechscope.model.params import count_params, published_params

    table = published_params(args.config) if args.config else count_params(load_model(args))
    if args.json:
        d = table.to_dict()
        emit_json({"total": d["total"], "by_component": d["by_component"], "layers": d["layers"], "name": d["name"],
                   "by_part": d["by_part"], "notes": d["notes"]})  # fmt: skip
    else:
        print(table.table())
    return 0


def run(args) -> int:
    if args.params or args.config:
        return params(args)
    info = describe(load_model(args))
    if args.json:
        emit_json(info)
        return 0
    hooks = info.pop("hooks")
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    print(f"\n{len(hooks)} hook points (blocks.0 shown; every block has the same):")
    for name, shape in hooks.items():
        if not name.startswith("blocks.") or name.startswith("blocks.0."):
            print(f"  {name:<34} [{', '.join(map(str, shape))}]")
    return 0
