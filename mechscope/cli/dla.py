"""``mechscope dla``: direct logit attribution of a logit difference per layer, head and MLP neuron."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope dla "The capital of France is" --answer " Paris" --wrong " Rome"
  mechscope dla "The capital of France is" --answer " Paris" --json
  mechscope dla "The capital of France is" --answer " Paris" --wrong " Rome" --png dla.png"""


def register(subparsers) -> None:
    p = add_parser(subparsers, "dla",
                   "Direct logit attribution: what each layer, attention head and MLP neuron writes to "
                   "logit(answer) − logit(wrong) at the last position (final-norm scale frozen from this run).",
                   EXAMPLES)  # fmt: skip
    p.add_argument("prompt", help="the prompt")
    p.add_argument("--answer", required=True, help="the answer token, exactly one token (e.g. ' Paris')")
    p.add_argument("--wrong", default=None, help="a competing token; without it the answer's own logit is attributed")
    p.add_argument("--position", type=int, default=-1, help="position to attribute (-1 = last)")
    p.add_argument("--top-k", type=int, default=10, help="neurons listed in each direction")
    p.add_argument("--png", type=Path, help="write per-layer bars and the layer × head heatmap as a PNG")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.io import finite_json
    from mechscope.attribution.dla import direct_logit_attribution
    from mechscope.errors import ConfigError
    from mechscope.io import check_output_file

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be a positive integer, got {args.top_k}")
    png = check_output_file(args.png, suffixes=(".png",)) if args.png else None
    model = load_model(args)
    res = direct_logit_attribution(model, args.prompt, args.answer, args.wrong, args.position)
    data = res.to_dict(args.top_k)
    files = []
    if png:
        from mechscope.viz.dla import save_dla_png

        files.append(str(save_dla_png(data, png)))
    if args.json:
        emit_json(finite_json({**data, "files": files}))
        return 0
    from mechscope.viz.tokens import visible

    print(f"{data['metric']} at position {res.position} ({visible(res.tokens[res.position])}): "
          f"{res.logit_diff:.3f}" + (f" (before softcap {res.total:.3f})" if model.cfg.logit_softcap else ""))  # fmt: skip
    print(f"{'component':<10} {'attn':>8} {'mlp':>8}   top heads")
    print(f"{'embed':<10} {res.embed:>8.3f}")
    for l in range(len(res.attn)):
        top = res.heads[l].abs().argsort(descending=True)[:2].tolist()
        heads = "  ".join(f"H{h} {float(res.heads[l, h]):+.2f}" for h in top)
        print(f"{'L' + str(l):<10} {float(res.attn[l]):>8.3f} {float(res.mlp[l]):>8.3f}   {heads}")
    print(f"{'bias':<10} {res.constant:>8.3f}\nsum of components {res.components_sum:.4f} (total {res.total:.4f})")
    print("top neurons: " + ", ".join(f"L{n['layer']}N{n['neuron']} {n['effect']:+.2f}" for n in data["top_neurons"]))
    print(f"({res.seconds:.1f} s)" + "".join(f"\nwrote {f}" for f in files))
    return 0
