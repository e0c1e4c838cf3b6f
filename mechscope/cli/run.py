"""``mechscope run``: one forward (or generation) with chosen hooks read and interventions applied."""

from __future__ import annotations

import json
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, format_top, load_model

EXAMPLES = """\
  mechscope run "The capital of France is"
  mechscope run "The capital of France is" --hook blocks.6.hook_resid_post --hook blocks.6.attn.hook_pattern
  mechscope run "The reliability of Wikipedia is very" \\
      --intervene '{"kind": "clamp", "hook": "blocks.9.hook_mlp_out", "dims": [163], "min": -9877, "max": -9877}'
  mechscope run "Once upon a time" --generate 20 --intervene steer.json --json
Interventions: a JSON object or list (kinds: set, clamp, add, scale, zero, mean, resample), or a file
holding one; see docs/interventions.md."""


def register(subparsers) -> None:
    p = add_parser(subparsers, "run", "Run a prompt: next-token top-k, statistics of chosen hooks, optional "
                   "interventions and generation.", EXAMPLES)  # fmt: skip
    p.add_argument("prompt", help="the text to run")
    add_model_arg(p)
    p.add_argument("--hook", action="append", default=[], metavar="NAME", help="hook to read (repeatable; globs ok)")
    p.add_argument("--position", type=int, default=-1, help="position to report (negative counts from the end)")
    p.add_argument("--intervene", metavar="JSON|FILE", help="interventions as JSON text or a .json file")
    p.add_argument("--generate", type=int, default=0, metavar="N", help="also generate N tokens (greedy)")
    p.add_argument("--top-k", type=int, default=10, help="how many next tokens to show")
    add_json_arg(p)
    p.set_defaults(func=run)


def parse_interventions(text: str | None):
    from mechscope.model.interventions import from_json

    if not text:
        return []
    path = Path(text)
    if not text.lstrip().startswith(("{", "[")) and path.suffix == ".json":
        if not path.is_file():
            from mechscope.errors import InterventionError

            raise InterventionError(f"interventions file {text} does not exist")
        text = path.read_text()
    return from_json(text)


def run(args) -> int:
    from mechscope.model.prompt_run import check_run_args, run_prompt
    from mechscope.viz.tokens import visible

    check_run_args(args.prompt, args.top_k, args.generate)  # before the model loads
    interventions = parse_interventions(args.intervene)
    model = load_model(args)
    res = run_prompt(model, args.prompt, hooks=args.hook, position=args.position, interventions=interventions,
                     generate=args.generate, top_k=args.top_k)  # fmt: skip
    result, tokens, hooks = res.to_dict(), res.tokens, res.hooks
    if args.json:
        emit_json(result)
        return 0
    print(" ".join(visible(t) for t in tokens))
    if interventions:
        print(f"interventions: {json.dumps(result['interventions'])}")
    print(f"top-{args.top_k} next tokens after position {args.position} ({visible(tokens[args.position])}):")
    print("\n".join(format_top(model, [t["prob"] for t in res.top], [t["id"] for t in res.top])))
    for name, s in hooks.items():
        print(f"{name:<34} shape {s['shape']}  at position {args.position}: |x| {s['norm']:.3g}  mean {s['mean']:.3g}"
              f"  min {s['min']:.3g}  max {s['max']:.3g}")  # fmt: skip
    if args.generate:
        print(f"generated: {result['generated']!r}")
    return 0
