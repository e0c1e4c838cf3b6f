"""``mechscope sae top``: the SAE latents that fire on one token of a prompt, strongest first, each with
the tokens its decoder direction promotes."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope sae top "The reliability of Wikipedia is very" --sae runs/sae-l6          # last token
  mechscope sae top "The capital of France is Paris" --sae runs/sae-l6 --position 5 --k 20
  mechscope sae top "Hello there" --sae runs/sae-l6 --json"""


def register(actions) -> None:
    p = add_parser(actions, "top",
                   "The latents of an SAE active on one token of a prompt (BOS prepended), strongest first, with "
                   "each latent's top logits (its decoder direction through the unembedding).",
                   EXAMPLES)  # fmt: skip
    p.add_argument("prompt", help="the prompt")
    p.add_argument("--sae", type=Path, required=True, metavar="DIR", help="the SAE folder")
    p.add_argument("--hook", default=None, help="the SAE's input hook, for layouts that do not record it (Gemma Scope)")
    p.add_argument("--position", type=int, default=-1, help="token position (-1 = last; 0 is BOS)")
    p.add_argument("--k", type=int, default=10, help="latents listed")
    p.add_argument("--logits", type=int, default=5, help="top logits shown per latent")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.errors import ConfigError
    from mechscope.model.tokens import check_prompt
    from mechscope.sae.artifact import load
    from mechscope.sae.feature_weights import logit_lists, top_latents

    check_prompt(args.prompt)
    for name in ("k", "logits"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    model = load_model(args)
    sae = load(args.sae, model, hook=args.hook).to(model.device)
    res = top_latents(model, sae, args.prompt, args.position, args.k)
    data = res.to_dict()
    for item in data["latents"]:
        item["top_logits"] = logit_lists(model, sae, item["latent"], args.logits)["top_logits"]
    if args.json:
        emit_json(data)
        return 0
    from mechscope.viz.tokens import visible

    shown = "".join(f"[{visible(t)}]" if i == res.position else t for i, t in enumerate(res.tokens))
    print(f"{res.hook}, position {res.position} ({visible(res.tokens[res.position])}): {res.active} latents active"
          + (" — position 0 is BOS, which SAEs are not trained on" if res.position == 0 else ""))  # fmt: skip
    print(shown.replace("\n", "⏎"))
    print(f"{'latent':>8} {'activation':>11}   top logits")
    for item in data["latents"]:
        logits = ", ".join(visible(x["token"]) for x in item["top_logits"])
        print(f"{item['latent']:>8} {item['activation']:>11.3f}   {logits}")
    print(f"({res.seconds:.2f} s)")
    return 0
