"""``mechscope patch``: activation patching (exact, batched) or attribution patching (gradients)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope patch --clean "The Eiffel Tower is in the city of" --corrupt "The Colosseum is in the city of" \\
                  --answer " Paris" --wrong " Rome" --png patch.png
  mechscope patch --clean ... --corrupt ... --answer " Paris" --wrong " Rome" --what resid,heads --json
  mechscope patch --clean ... --corrupt ... --answer " Paris" --wrong " Rome" --method attribution [--grad-drop]
  mechscope patch --clean "The Eiffel Tower is in" --corrupt "The Roman Colosseum is in" --align right ..."""


def register(subparsers) -> None:
    p = add_parser(subparsers, "patch",
                   "Activation patching: copy one clean activation into the corrupted run and measure how much of "
                   "logit(answer) − logit(wrong) comes back (0 = corrupt, 1 = clean), for every layer × position "
                   "(resid_pre, attn_out, mlp_out) and layer × head.",
                   EXAMPLES)  # fmt: skip
    p.add_argument("--clean", required=True, help="the prompt whose activations are patched in")
    p.add_argument("--corrupt", required=True, help="the prompt that is run and patched")
    p.add_argument("--answer", required=True, help="the clean answer, exactly one token (e.g. ' Paris')")
    p.add_argument("--wrong", default=None, help="the corrupt answer (e.g. ' Rome'); without it the answer's logit alone")
    p.add_argument("--what", default="resid,attn,mlp", help="comma-separated components: resid, attn, mlp, heads")
    p.add_argument("--method", choices=("exact", "attribution"), default="exact",
                   help="exact: one patched run per component (batched); attribution: one backward pass, a gradient "
                        "estimate of every effect")  # fmt: skip
    p.add_argument("--grad-drop", action="store_true",
                   help="with --method attribution: AtP*'s GradDrop (one backward per layer; unsigned magnitudes that "
                        "expose cancelling paths)")  # fmt: skip
    p.add_argument("--align", choices=("left", "right"), default=None,
                   help="prompts of different token lengths: pair positions from the start (left) or from the end "
                        "(right); unpaired clean positions are null")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="patched runs per forward")
    p.add_argument("--png", type=Path, help="write the heatmaps as a PNG")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.io import finite_json
    from mechscope.attribution.patching import parse_what
    from mechscope.errors import ConfigError
    from mechscope.io import check_output_file

    what = parse_what(args.what)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.grad_drop and args.method != "attribution":
        raise ConfigError("--grad-drop is a fix of attribution patching: use it with --method attribution")
    png = check_output_file(args.png, suffixes=(".png",)) if args.png else None
    model = load_model(args)
    if args.method == "attribution":
        from mechscope.attribution.atp import attribution_patching

        res = attribution_patching(model, args.clean, args.corrupt, args.answer, args.wrong, what=what, align=args.align,
                                   grad_drop=args.grad_drop)  # fmt: skip
    else:
        from mechscope.attribution.patching import activation_patching

        res = activation_patching(model, args.clean, args.corrupt, args.answer, args.wrong, what=what,
                                  align=args.align, batch_size=args.batch_size, progress=not args.json)  # fmt: skip
    data = res.to_dict()
    files = []
    if png:
        from mechscope.viz.patching import save_patch_png

        files.append(str(save_patch_png(data, png)))
    if args.json:
        emit_json(finite_json({**data, "files": files}))
        return 0
    print(_table(res))
    print(f"({res.seconds:.1f} s, {res.forwards} forwards)" + "".join(f"\nwrote {f}" for f in files))
    return 0


def _table(res) -> str:
    from mechscope.viz.tokens import visible

    lines = [f"{res.method} patching, logit difference clean {res.clean_logit_diff:.3f}, corrupt "
             f"{res.corrupt_logit_diff:.3f}; cells: normalised (0 = corrupt, 1 = clean)"]  # fmt: skip
    toks = [visible(t)[:7] for t in res.tokens]
    for kind, grid in res.effects.items():
        lines.append(f"\n{kind}\n{'':>4} " + " ".join(f"{t:>7}" for t in toks))
        for l in range(grid.shape[0]):
            lines.append(f"{'L' + str(l):>4} " + " ".join("      ." if v != v else f"{v:7.2f}" for v in grid[l].tolist()))
    if res.heads is not None:
        lines.append("\nheads (z at every position)\n" + f"{'':>4} " + " ".join(f"{'H' + str(h):>7}" for h in range(res.heads.shape[1])))
        for l in range(res.heads.shape[0]):
            lines.append(f"{'L' + str(l):>4} " + " ".join(f"{v:7.2f}" for v in res.heads[l].tolist()))
    return "\n".join(lines)
