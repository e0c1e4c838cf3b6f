"""``mechscope diff BASE TUNED``: compare a model with its fine-tune on the same prompts: activation
differences by layer and position, the logit lens of the mean difference, the mean difference as a
steering vector on the base model, and optionally a BatchTopK crosscoder."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_parser, emit_json

EXAMPLES = """\
  mechscope diff gemma-3-270m runs/ocean --prompts prompts.txt
  mechscope diff gemma-3-270m runs/ocean --builtin-prompts --target ocean --target sea --png diff.png
  mechscope diff gemma-3-270m runs/ocean --prompts prompts.txt --crosscoder --width 2048 --k 32 --tokens 50000 --save runs/xc --json
What it computes (docs/diffing.md):
  per layer      mean ‖tuned − base‖ of blocks.L.hook_resid_post (BOS left out), relative to ‖base‖
  lens           W_U · (g ⊙ mean Δ) / rms(base), g = the final norm's gain; best layer = most peaked lens
  steer          base model + c · mean Δ at the best layer (every position but BOS), target log-prob shift
  --crosscoder   BatchTopK crosscoder at the best layer; latents by relative decoder norm
                 r = ‖d_tuned‖/(‖d_base‖+‖d_tuned‖): base-only r < 0.1, shared 0.3..0.7, tuned-only r > 0.9"""


def register(subparsers) -> None:
    p = add_parser(subparsers, "diff",
                   "Diff a fine-tuned model against its base: activation differences per layer and position, the "
                   "tokens the mean difference promotes, steering the base with it, and a BatchTopK crosscoder.",
                   EXAMPLES)  # fmt: skip
    p.add_argument("base", help="the base model: 'gemma-3-270m', a local HF directory, a .gguf file")
    p.add_argument("tuned", help="the fine-tuned model (same architecture and tokenizer), e.g. `mechscope finetune` output")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompts", type=Path, metavar="FILE", help="UTF-8 text file, one prompt per line")
    src.add_argument("--builtin-prompts", action="store_true", help="use held-out contexts of the built-in corpus")
    src.add_argument("--narrative-prompts", action="store_true", help="use everyday sentences with no theme of their "
                     "own (best for a themed fine-tune whose --general share trained on the built-in corpus)")  # fmt: skip
    p.add_argument("--n-prompts", type=int, default=100, help="prompts taken with --builtin-prompts / --narrative-prompts")
    p.add_argument("--seq-len", type=int, default=64, help="tokens per prompt (BOS included); longer prompts are cut")
    p.add_argument("--layers", metavar="L,L,...", help="layers to compare (default: all)")
    p.add_argument("--components", default="resid_post", help="resid_post[,attn_out][,mlp_out]: extra per-layer norms")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per forward")
    p.add_argument("--target", action="append", default=[], metavar="WORD",
                   help="word whose next-token log-prob the steering sweep scores (repeat; default: the 5 most promoted tokens)")
    p.add_argument("--steer-layer", type=int, help="layer of the steering vector (default: the best lens layer)")
    p.add_argument("--steer-prompt", default=None, help="the neutral prompt steered (default: a weekend story opening)")
    p.add_argument("--coefs", default="0,0.5,1,2,4", metavar="C,C,...", help="steering coefficients (1 = the raw mean difference)")
    p.add_argument("--generate", type=int, default=0, metavar="N", help="greedy tokens generated per coefficient")
    xc = p.add_argument_group("crosscoder")
    xc.add_argument("--crosscoder", action="store_true", help="train a BatchTopK crosscoder on both models' activations")
    xc.add_argument("--width", type=int, default=2048, help="crosscoder latents")
    xc.add_argument("--k", type=int, default=32, help="average active latents per token")
    xc.add_argument("--tokens", type=int, default=20_000, help="training tokens (prompts first, then built-in corpus text)")
    xc.add_argument("--cc-layer", type=int, help="crosscoder layer (default: the best lens layer)")
    xc.add_argument("--steps-tokens", type=int, help="tokens seen in training (default: 10 × --tokens)")
    xc.add_argument("--save", type=Path, metavar="DIR", help="save the crosscoder here (safetensors + JSON)")
    xc.add_argument("--force", action="store_true", help="overwrite --save if it holds an earlier crosscoder")
    p.add_argument("--png", type=Path, help="write the picture: norms by layer × position, promoted tokens, steering curve")
    p.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda ...")
    add_json_arg(p)
    p.set_defaults(func=run)


def _ints(text: str | None, what: str) -> list[int] | None:
    from mechscope.errors import ConfigError

    if text is None:
        return None
    try:
        out = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"{what} takes comma-separated integers like 3,6,9; got {text!r:.40}") from None
    if not out:
        raise ConfigError(f"{what} is empty: give comma-separated integers like 3,6,9")
    return out


def _floats(text: str, what: str) -> list[float]:
    import math

    from mechscope.errors import ConfigError

    vals = []
    for s in text.split(","):
        try:
            v = float(s)
        except ValueError:
            v = float("nan")
        if not math.isfinite(v):
            raise ConfigError(f"{what} takes comma-separated finite numbers like 0,1,2; {s.strip()!r:.20} is not one")
        vals.append(v)
    return vals


def _check_args(args) -> None:
    from mechscope.errors import ConfigError

    for name in ("seq_len", "batch_size", "n_prompts", "width", "k", "tokens"):
        v = getattr(args, name)
        if v <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {v}")
    if args.seq_len < 2:
        raise ConfigError("--seq-len must be at least 2 (BOS and one token)")
    if args.generate < 0:
        raise ConfigError(f"--generate must be ≥ 0, got {args.generate}")
    if args.crosscoder and args.k > args.width:
        raise ConfigError(f"--k ({args.k}) cannot exceed --width ({args.width})")
    if (args.save is not None or args.cc_layer is not None) and not args.crosscoder:
        raise ConfigError("--save and --cc-layer go with --crosscoder")
    if args.steps_tokens is not None and args.steps_tokens <= 0:
        raise ConfigError(f"--steps-tokens must be positive, got {args.steps_tokens}")


def run(args: argparse.Namespace) -> int:
    import mechscope
    from mechscope.diff.activations import DiffConfig
    from mechscope.diff.pair import builtin_prompts, check_pair, read_prompts, tokenize_prompts
    from mechscope.diff.steer import DEFAULT_PROMPT, check_coefs
    from mechscope.io import check_output_dir, check_output_file
    from mechscope.model.tokens import check_prompt

    _check_args(args)
    layers = _ints(args.layers, "--layers")
    comps = tuple(c.strip() for c in args.components.split(",") if c.strip())
    cfg = DiffConfig(layers=tuple(layers) if layers else None, components=comps, seq_len=args.seq_len,
                     batch_size=args.batch_size)  # fmt: skip
    coefs = check_coefs(_floats(args.coefs, "--coefs"))
    steer_prompt = check_prompt(args.steer_prompt) if args.steer_prompt is not None else DEFAULT_PROMPT
    prompts = read_prompts(args.prompts) if args.prompts is not None else None
    if args.png is not None:
        check_output_file(args.png, suffixes=(".png",))
    if args.save is not None:
        check_output_dir(args.save, "crosscoder", force=args.force)
    base = mechscope.load(args.base, device=args.device)
    tuned = mechscope.load(args.tuned, device=args.device)
    check_pair(base, tuned)
    if args.narrative_prompts:
        from mechscope.diff.themes import narrative_prompts

        prompts = narrative_prompts(args.n_prompts)
    seqs = (tokenize_prompts(base, tuned, prompts, args.seq_len) if prompts is not None
            else builtin_prompts(base, args.n_prompts, args.seq_len))  # fmt: skip
    progress = not args.json
    if args.crosscoder:
        from mechscope.diff.crosscoder_run import diff_with_crosscoder

        res = diff_with_crosscoder(base, tuned, seqs, cfg, width=args.width, k=args.k, tokens=args.tokens,
                                   cc_layer=args.cc_layer, steps_tokens=args.steps_tokens, save=args.save,
                                   force=args.force, targets=args.target, steer_layer=args.steer_layer,
                                   steer_prompt=steer_prompt, coefs=coefs, generate=args.generate, progress=progress)  # fmt: skip
    else:
        from mechscope.diff.report import diff_models

        res = diff_models(base, tuned, seqs, cfg, targets=args.target, steer_layer=args.steer_layer,
                          steer_prompt=steer_prompt, coefs=coefs, generate=args.generate, progress=progress)  # fmt: skip
    if args.png is not None:
        from mechscope.viz.diff import save_diff_png

        save_diff_png(res.to_dict(), args.png)
    d = res.to_dict()
    if args.json:
        if "crosscoder" in d:
            d["crosscoder"] = {k: v for k, v in d["crosscoder"].items() if k not in ("rel_norms", "live")}
        emit_json(d)
    else:
        print(_table(d))
    return 0


def _table(d: dict) -> str:
    from mechscope.viz.tokens import visible

    lines = [f"{d['base']} → {d['tuned']}: {d['prompts']} prompts, {d['tokens']} tokens (BOS left out)",
             "layer  mean‖Δ‖   ‖Δ‖/‖base‖  lens peak"]  # fmt: skip
    for r in d["layers"]:
        mark = "  ← best" if r["layer"] == d["best_layer"] else ""
        lines.append(f"{r['layer']:>5}  {r['mean_norm']:8.3f}  {r['rel_norm']:10.3f}  {r['lens_score']:9.2f}{mark}")
    toks = ", ".join(f"{visible(t['token'])} {t['logit']:+.2f}" for t in d["promoted_tokens"][:20])
    lines.append(f"promoted at layer {d['best_layer']}: {toks}")
    lines.append(f"steering the base at layer {d['steer_layer']} on {d['steer_prompt']!r}, targets {d['targets']}:")
    for s in d["steer"]:
        top = " ".join(visible(t["token"]) for t in s["top"][:5])
        lines.append(f"  c={s['coef']:<5g} target log-prob shift {s['target_logprob_shift']:+.3f}   top: {top}"
                     + (f"   {s['text']!r}" if s["text"] else ""))  # fmt: skip
    xc = d.get("crosscoder")
    if xc:
        c = xc["counts"]
        lines.append(f"crosscoder width {xc['width']} k {xc['k']} at layer {xc['layer']}: FVU {xc['fvu']:.3f}; "
                     f"base-only {c['base_only']}, shared {c['shared']}, tuned-only {c['tuned_only']}, "
                     f"other {c['other']}, dead {c['dead']}")  # fmt: skip
        for row in xc["tuned_only"]:
            ctx = row["contexts"][0]["text"] if row["contexts"] else ""
            lines.append(f"  latent {row['latent']:>5} r={row['rel_norm']:.2f}  "
                         f"{' '.join(visible(t) for t in row['top_tokens'][:6])}   e.g. {visible(ctx)!s:.60}")  # fmt: skip
    return "\n".join(lines)
