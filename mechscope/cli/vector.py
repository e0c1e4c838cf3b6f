"""``mechscope vector``: steering vectors from contrasting prompt sets (``make``), applied with a sweep of
coefficients (``apply``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope vector make --builtin doubt --hook blocks.9.hook_resid_post --out doubt-l9        # ~10 s
  mechscope vector make --pos doubtful.txt --neg confident.txt --hook blocks.9.hook_resid_post --out v --method pca
  mechscope vector apply doubt-l9 "The reliability of Wikipedia is very" --coef 1 --target questionable
  mechscope vector apply doubt-l9 "The reliability of Wikipedia is very" --sweep 0,0.5,1,2,4 --generate 12 \\
      --target questionable --target doubtful --png sweep.png
Prompt files: one prompt per line, blank lines ignored. c adds c × the vector as made (c = 1: the raw
difference of means), at every position but BOS, generated tokens included; greedy generation.
See docs/steering.md."""

MAKE_EXAMPLES = """\
  mechscope vector make --builtin doubt --hook blocks.9.hook_resid_post --out doubt-l9
  mechscope vector make --pos pos.txt --neg neg.txt --hook blocks.6.hook_resid_post --out v --position last
  mechscope vector make --pos pos.txt --neg neg.txt --hook blocks.9.hook_resid_post --out v --method pca --json"""

APPLY_EXAMPLES = """\
  mechscope vector apply doubt-l9 "The reliability of Wikipedia is very" --coef 1 --target questionable
  mechscope vector apply doubt-l9 "The accuracy of the report is" --sweep 0,0.5,1,1.5,2,3 --generate 12 --png s.png
  mechscope vector apply doubt-l9 "I think that" --sweep=-2,0,2 --json
The effect score is the mean over --target words of the log-prob change of the word's first token (a
space is put in front unless the word or the prompt already has one) as the next token, against c = 0."""


def register(subparsers) -> None:
    p = add_parser(subparsers, "vector",
                   "Steering vectors: the difference of mean activations (or the PCA of paired differences) "
                   "between two prompt sets at one hook, saved; then added with a sweep of coefficients.",
                   EXAMPLES)  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    m = add_parser(actions, "make", "Make a steering vector: mean(pos) - mean(neg) activations at --hook (or the "
                   "first principal direction of paired differences), saved as safetensors + JSON.", MAKE_EXAMPLES)  # fmt: skip
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--pos", type=Path, metavar="FILE", help="the positive prompts (the direction points towards them)")
    src.add_argument("--builtin", choices=("doubt",), help="a built-in set: doubt = 60 doubtful vs confident statements")
    m.add_argument("--neg", type=Path, metavar="FILE", help="the negative prompts (with --pos)")
    m.add_argument("--hook", required=True, help="a [batch, pos, d_model] hook, e.g. blocks.9.hook_resid_post")
    m.add_argument("--out", required=True, type=Path, metavar="DIR", help="the vector's folder (new, or an earlier vector's)")
    m.add_argument("--method", choices=("mean", "pca"), default="mean",
                   help="mean: difference of means; pca: first principal direction of the paired differences "
                   "(equal counts; scaled to the mean difference's projection)")  # fmt: skip
    m.add_argument("--position", choices=("mean", "last", "all"), default="mean",
                   help="mean: each prompt's mean over positions but BOS; last: its last token; all: one row per "
                   "position (prompts of equal token length)")  # fmt: skip
    m.add_argument("--force", action="store_true", help="write into a folder that holds other files (they are kept)")
    add_model_arg(m)
    add_json_arg(m)
    m.set_defaults(func=run_make)

    a = add_parser(actions, "apply", "Add c × a saved steering vector at every position but BOS for each coefficient; "
                   "shows the next-token top-k and greedy text side by side, with the target words' log-prob shift.",
                   APPLY_EXAMPLES)  # fmt: skip
    a.add_argument("vector", type=Path, help="the vector's folder (`mechscope vector make` output)")
    a.add_argument("prompt", help="the text to steer")
    dose = a.add_mutually_exclusive_group(required=True)
    dose.add_argument("--coef", type=float, metavar="C", help="one coefficient (c = 0 is always run as the reference)")
    dose.add_argument("--sweep", metavar="C,C,...", help="several coefficients, comma-separated (e.g. 0,0.5,1,2,4; "
                      "write --sweep=-2,0,2 when the first is negative)")  # fmt: skip
    a.add_argument("--generate", type=int, default=0, metavar="N", help="tokens to continue greedily per coefficient")
    a.add_argument("--target", action="append", default=[], metavar="WORD",
                   help="a word whose next-token log-prob shift is the effect score (repeatable)")  # fmt: skip
    a.add_argument("--top-k", type=int, default=10, help="next tokens shown per coefficient")
    a.add_argument("--include-bos", action="store_true", help="steer position 0 (BOS) too; by default it is left alone")
    a.add_argument("--hook", default=None, help="refuse the vector unless it was made at this hook")
    a.add_argument("--png", type=Path, help="write the sweep's picture (target shift vs c, top-token probabilities)")
    add_model_arg(a)
    add_json_arg(a)
    a.set_defaults(func=run_apply)


def read_prompts(path: Path, what: str) -> list[str]:
    """One prompt per line, blank lines ignored; a missing, unreadable or empty file is one line."""
    from mechscope.errors import ConfigError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} file {path} is a folder: give a text file, one prompt per line") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path} ({exc.strerror or exc})") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ConfigError(f"{what} file {path} has no prompts: write one prompt per line")
    return prompts


def run_make(args: argparse.Namespace) -> int:
    from mechscope.errors import ConfigError
    from mechscope.io import check_output_dir
    from mechscope.steer.vector import KIND

    if args.builtin is not None:
        if args.neg is not None:
            raise ConfigError("--neg goes with --pos; --builtin brings its own negative prompts")
        from mechscope.steer.builtin import builtin_set

        pos, neg = builtin_set(args.builtin)
        source = f"builtin:{args.builtin}"
    else:
        if args.neg is None:
            raise ConfigError("--pos needs --neg: the prompts to contrast with")
        pos, neg = read_prompts(args.pos, "--pos"), read_prompts(args.neg, "--neg")
        if args.method == "pca" and len(pos) != len(neg):
            raise ConfigError(f"--method pca pairs the prompts line by line, but {args.pos} has {len(pos)} and "
                              f"{args.neg} has {len(neg)}: give equal counts")  # fmt: skip
        source = f"files:{args.pos},{args.neg}"
    out = check_output_dir(args.out, KIND, force=args.force)
    model = load_model(args)

    from mechscope.steer.vector import make_vector

    bar = None if args.json else _bar(len(pos) + len(neg), "mechscope: vector", "prompt")
    try:
        vec = make_vector(model, pos, neg, args.hook, method=args.method, position=args.position,
                          progress=(lambda done, total: bar.update(done - bar.n)) if bar else None)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    vec.meta["source"] = source
    path = vec.save(out, force=args.force)
    data = {**vec.to_dict(), "out": str(path)}
    if args.json:
        emit_json(data)
        return 0
    m = vec.meta
    print(f"steering vector ({vec.method}, position {m['position']}) at {vec.hook} of {model.name}: "
          f"{m['n_pos']} positive vs {m['n_neg']} negative prompts ({source})")  # fmt: skip
    print(f"norm {vec.norm:.4g} (activation norms there: positive {m['pos_norm']:.4g}, negative {m['neg_norm']:.4g})"
          + (f"; PCA explains {_share(m['explained_variance'])} of the paired differences" if "explained_variance" in m else ""))  # fmt: skip
    print(f"wrote {path}   (apply: mechscope vector apply {path} \"PROMPT\" --sweep 0,0.5,1,2 --target WORD)")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from mechscope.cli.steer import sweep_values
    from mechscope.io import check_output_file
    from mechscope.model.tokens import check_prompt

    check_prompt(args.prompt)
    coefs = sweep_values(args, "--coef", args.coef)
    png = check_output_file(args.png, suffixes=(".png",)) if args.png else None
    from mechscope.steer.vector import load_vector

    load_vector(args.vector, hook=args.hook)  # a bad folder fails before the model loads
    model = load_model(args)
    vec = load_vector(args.vector, model, hook=args.hook)

    from mechscope.steer.apply import apply_vector

    bar = None if args.json or len(coefs) < 2 else _bar(len(set(coefs) | {0.0}), "mechscope: steering", "coef")
    try:
        res = apply_vector(model, vec, args.prompt, coefs, generate=args.generate, targets=args.target,
                           top_k=args.top_k, include_bos=args.include_bos,
                           progress=(lambda done, total: bar.update(1)) if bar else None)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    data = {**res.to_dict(), "vector_dir": str(args.vector)}
    files = []
    if png:
        from mechscope.viz.vector import save_vector_png

        files.append(str(save_vector_png(data, png)))
    if args.json:
        emit_json({**data, "files": files})
        return 0
    from mechscope.viz.vector import render

    print(render(data))
    print(f"({res.seconds:.1f} s)" + "".join(f"\nwrote {f}" for f in files))
    return 0


def _share(x) -> str:
    return f"{x:.0%}" if isinstance(x, float) else f"{min(x[1:] or x):.0%}–{max(x[1:] or x):.0%} per position"


def _bar(total: int, desc: str, unit: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False)
