"""``mechscope trace``: ROME-style causal tracing of a fact (noise the subject, restore one state)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope trace "Michael Jordan plays the sport of" --subject "Michael Jordan" --answer " basketball" --png trace.png
  mechscope trace "The Eiffel Tower is located in the city of" --subject "The Eiffel Tower" --answer " Paris" --json
  mechscope trace --facts --samples 3 --png facts.png        # Meng et al.'s averaged picture over the built-in facts"""


def register(subparsers) -> None:
    from mechscope.attribution.config import TraceConfig
    from mechscope.cli.config_args import add_config_args

    p = add_parser(subparsers, "trace",
                   "Causal tracing (Meng et al. 2022): add noise to the subject's token embeddings, then restore one "
                   "state (block output, MLP window or attention window) at one layer and position and measure how "
                   "much P(answer) comes back. ~45 s for a 7-token prompt on 2 CPU cores with 10 samples.",
                   EXAMPLES)  # fmt: skip
    p.add_argument("prompt", nargs="?", help="the prompt (not with --facts)")
    p.add_argument("--subject", help="the subject, a substring of the prompt (e.g. 'Michael Jordan')")
    p.add_argument("--answer", help="the answer, exactly one token (e.g. ' basketball')")
    p.add_argument("--facts", action="store_true",
                   help="trace the built-in fact set and average by layer at the last subject token and the last token")
    add_config_args(p, TraceConfig)
    p.add_argument("--png", type=Path, help="write the heatmaps (or, with --facts, the averaged curves) as a PNG")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.io import finite_json
    from mechscope.attribution.tracing import TraceConfig, causal_trace, trace_facts
    from mechscope.cli.config_args import config_from_args
    from mechscope.errors import ConfigError
    from mechscope.io import check_output_file

    cfg = config_from_args(TraceConfig, args)
    if args.facts and (args.prompt or args.subject or args.answer):
        raise ConfigError("--facts traces the built-in fact set: give no PROMPT, --subject or --answer with it")
    if not args.facts and not (args.prompt and args.subject and args.answer):
        raise ConfigError("give PROMPT, --subject and --answer (or --facts for the built-in fact set)")
    png = check_output_file(args.png, suffixes=(".png",)) if args.png else None
    model = load_model(args)
    files = []
    if args.facts:
        data = trace_facts(model, config=cfg, progress=not args.json)
        if png:
            from mechscope.viz.patching import save_facts_png

            files.append(str(save_facts_png(data, png)))
        if args.json:
            emit_json(finite_json({**data, "files": files}))
            return 0
        print(f"{data['n_facts']} facts: mean P(answer) clean {data['clean_prob']:.3f}, corrupted {data['corrupted_prob']:.3f}")
        for where in ("last_subject", "last"):
            print(f"\naverage indirect effect at the {where.replace('_', ' ')} token\n{'':>4} {'resid':>7} {'mlp':>7} {'attn':>7}")
            for l in range(model.cfg.n_layers):
                print(f"{'L' + str(l):>4} " + " ".join(f"{data['average'][k][where][l]:7.3f}" for k in ("resid", "mlp", "attn")))
    else:
        res = causal_trace(model, args.prompt, args.subject, args.answer, cfg, progress=not args.json)
        data = res.to_dict()
        if png:
            from mechscope.viz.patching import save_trace_png

            files.append(str(save_trace_png(data, png)))
        if args.json:
            emit_json(finite_json({**data, "files": files}))
            return 0
        _print_trace(res)
    print(f"({data['seconds']:.1f} s)" + "".join(f"\nwrote {f}" for f in files))
    return 0


def _print_trace(res) -> None:
    from mechscope.viz.tokens import visible

    print(f"P({res.answer!r}) clean {res.clean_prob:.3f}, subject noised {res.corrupted_prob:.3f} "
          f"(σ = {res.sigma:.3f}, noise {res.config.noise}σ, {res.config.samples} samples); * = subject token")  # fmt: skip
    toks = [visible(t)[:7] + ("*" if i in res.subject_positions else "") for i, t in enumerate(res.tokens)]
    for kind, grid in res.effects.items():
        label = kind if kind == "resid" else f"{kind} (window {res.config.window})"
        print(f"\n{label}: indirect effect on P(answer)\n{'':>4} " + " ".join(f"{t:>8}" for t in toks))
        for l in range(grid.shape[0]):
            print(f"{'L' + str(l):>4} " + " ".join(f"{v:8.3f}" for v in grid[l].tolist()))
