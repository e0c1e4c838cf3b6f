"""``mechscope run``: one forward (or generation) with chosen hooks read and interventions applied."""

from __future__ import annotations

import json
from pathlib import Path

from mechscope.cli.common import (add_json_arg, add_model_arg, add_parser, emit_json, format_top, load_model,
                                  require_finite)  # fmt: skip

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
    from mechscope.errors import ConfigError, OutOfRangeError
    from mechscope.viz.tokens import visible

    from mechscope.model.tokens import check_prompt

    check_prompt(args.prompt)
    interventions = parse_interventions(args.intervene)
    if args.generate < 0:
        raise ConfigError(f"--generate must be ≥ 0, got {args.generate}")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be between 1 and the vocabulary size, got {args.top_k}")
    model = load_model(args)
    if not 1 <= args.top_k <= model.cfg.d_vocab:
        raise ConfigError(f"--top-k must be between 1 and the vocabulary size {model.cfg.d_vocab}")
    names = [n for pattern in args.hook for n in model.resolve_names(pattern)]
    tokens = model.to_str_tokens(model.to_tokens(args.prompt).input_ids[0])  # to_tokens checks the context window
    if len(tokens) + args.generate > model.cfg.n_ctx:
        raise ConfigError(f"--generate {args.generate} after {len(tokens)} prompt tokens passes the model's context "
                          f"window of {model.cfg.n_ctx} tokens: generate at most {max(0, model.cfg.n_ctx - len(tokens))}")  # fmt: skip
    if not -len(tokens) <= args.position < len(tokens):
        raise OutOfRangeError(f"position {args.position} out of range: the prompt has {len(tokens)} tokens")
    logits, cache = model.run_with_cache(args.prompt, names=names, interventions=interventions)
    require_finite(model, logits)
    probs = logits[0, args.position].float().softmax(-1)
    top = probs.topk(args.top_k)
    hooks = {}
    for name in names:
        spec = model.spec(name)
        act = cache[name][0].select(spec.pos_axis - 1, args.position).float()
        hooks[name] = {"shape": list(cache[name].shape), "norm": act.norm().item(), "mean": act.mean().item(),
                       "min": act.min().item(), "max": act.max().item()}  # fmt: skip
    result = {
        "model": model.name, "tokens": tokens, "position": args.position,
        "top": [{"token": t, "id": i, "prob": p} for t, i, p in
                zip(model.to_str_tokens(top.indices.tolist()), top.indices.tolist(), top.values.tolist())],
        "hooks": hooks, "interventions": [iv.to_dict() for iv in interventions],
    }  # fmt: skip
    if args.generate:
        result["generated"] = model.generate(args.prompt, args.generate, interventions=interventions)
    if args.json:
        emit_json(result)
        return 0
    print(" ".join(visible(t) for t in tokens))
    if interventions:
        print(f"interventions: {json.dumps(result['interventions'])}")
    print(f"top-{args.top_k} next tokens after position {args.position} ({visible(tokens[args.position])}):")
    print("\n".join(format_top(model, top.values.tolist(), top.indices.tolist())))
    for name, s in hooks.items():
        print(f"{name:<34} shape {s['shape']}  at position {args.position}: |x| {s['norm']:.3g}  mean {s['mean']:.3g}"
              f"  min {s['min']:.3g}  max {s['max']:.3g}")  # fmt: skip
    if args.generate:
        print(f"generated: {result['generated']!r}")
    return 0
