"""``mechscope lens``: the logit / tuned lens on every layer × position, and tuned-lens training.

Actions are subcommands: ``read`` (the default: ``mechscope lens PROMPT`` is ``mechscope lens read
PROMPT``), ``train-tuned`` and ``eval-tuned``. Training flags come from
:class:`~mechscope.lens.train.TunedLensTrainConfig` and its corpus config, so defaults live there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model, require_finite

ACTIONS = ("read", "train-tuned", "eval-tuned")
DEFAULT_ACTION = "read"
"""``mechscope lens PROMPT`` means ``mechscope lens read PROMPT`` (see :func:`mechscope.cli.main`)."""
EXAMPLES = """\
  mechscope lens "The reliability of Wikipedia is very"
  mechscope lens "The capital of France is" --target " Paris" --json
  mechscope lens "The reliability of Wikipedia is very" --sublayers --png lens.png --html lens.html --vectors resid.png
  mechscope lens train-tuned --model gemma-3-270m --tokens 204800        # ~30 min on 2 CPU cores; rerun to resume
  mechscope lens train-tuned --corpus 'notes/*.txt' --corpus builtin --tokens 100000
  mechscope lens eval-tuned --json                                       # ~4 min
  mechscope lens eval-tuned --tokens 8192 --png tuned_kl.png             # per-row KL, logit vs tuned
  mechscope lens "The reliability of Wikipedia is very" --lens tuned
Actions: read (default), train-tuned, eval-tuned; `mechscope lens ACTION --help` for each."""
LENS_FILE_HELP = "tuned-lens directory (default: $MECHSCOPE_HOME/lenses/<model>-<fingerprint>/tuned)"
CORPUS = {"sources": "--corpus"}
CORPUS_HELP = {"sources": "'builtin' (offline, default) or .txt/.jsonl/.parquet files, directories, globs; repeatable"}


def register(subparsers) -> None:
    from mechscope.cli.config_args import add_config_args
    from mechscope.data.corpus import CorpusConfig
    from mechscope.lens.config import TunedLensTrainConfig

    p = add_parser(subparsers, "lens",
                   "Logit lens (or tuned lens) on every row × position: top-k with probabilities, entropy, KL to "
                   "the final distribution, rank of the next token. Also trains and evaluates tuned lenses.",
                   EXAMPLES)  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    r = add_parser(actions, "read", "Read one prompt through the logit or tuned lens (the default action).",
                   EXAMPLES.split("\n")[0])  # fmt: skip
    r.add_argument("prompt", help="the prompt to read")
    add_model_arg(r)
    add_json_arg(r)
    r.add_argument("--lens", choices=("logit", "tuned"), default="logit", help="which lens reads the rows")
    r.add_argument("--lens-file", type=Path, default=None, help=LENS_FILE_HELP)
    r.add_argument("--sublayers", action="store_true", help="rows after attention and after the MLP of each block")
    r.add_argument("--top-k", type=int, default=10, help="tokens kept per cell")
    r.add_argument("--position", type=int, default=-1, help="position for the top-k table and --vectors (-1 = last)")
    r.add_argument("--target", action="append", default=None, metavar="TOKEN",
                   help="also track this token's probability and rank (exactly one token, e.g. ' Paris'); repeatable")  # fmt: skip
    r.add_argument("--png", type=Path, help="write the heatmap + top-k panel as a PNG")
    r.add_argument("--html", type=Path, help="write a self-contained interactive grid (hover a cell for its top-k)")
    r.add_argument("--vectors", type=Path, help="write each row's residual vector at --position as a near-square image")
    r.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour the terminal grid")
    r.set_defaults(func=read)

    t = add_parser(actions, "train-tuned", "Train a tuned lens on a corpus (checkpointed; rerun to resume).",
                   "\n".join(EXAMPLES.split("\n")[3:5]))  # fmt: skip
    add_model_arg(t)
    add_json_arg(t)
    add_config_args(t, TunedLensTrainConfig, rename=CORPUS, help=CORPUS_HELP)
    t.add_argument("--out", type=Path, default=None, help=f"where to save; default: {LENS_FILE_HELP.split('(default: ')[1][:-1]}")
    t.add_argument("--checkpoint-every", type=int, default=25, metavar="STEPS",
                   help="checkpoint to OUT.checkpoint every this many steps and at the end; running the same command "
                        "again resumes from it")  # fmt: skip
    t.add_argument("--fresh", action="store_true", help="delete OUT.checkpoint (a training checkpoint) and start from step 0")
    t.set_defaults(func=train)

    e = add_parser(actions, "eval-tuned", "Compare the tuned lens with the logit lens on held-out text (KL per row).",
                   "\n".join(EXAMPLES.split("\n")[5:7]))  # fmt: skip
    add_model_arg(e)
    add_json_arg(e)
    e.add_argument("--lens-file", type=Path, default=None, help=LENS_FILE_HELP)
    e.add_argument("--sublayers", action="store_true", help="also evaluate the after-attention rows")
    e.add_argument("--tokens", type=int, default=2048, help="held-out tokens to evaluate on")
    add_config_args(e, CorpusConfig, rename=CORPUS, help=CORPUS_HELP)
    e.add_argument("--png", type=Path, help="write the per-row KL of both lenses as a PNG")
    e.set_defaults(func=evaluate)


def _tuned(args, model):
    from mechscope.lens.tuned import default_lens_dir, load_tuned_lens

    return load_tuned_lens(args.lens_file or default_lens_dir(model), model)


def read(args: argparse.Namespace) -> int:
    from mechscope.errors import ConfigError
    from mechscope.io import check_output_file
    from mechscope.lens.logit import check_top_k, logit_lens
    from mechscope.model.tokens import check_prompt

    # everything that needs no model is checked before it loads, outputs before the work is done
    check_prompt(args.prompt)
    if args.top_k < 1:
        raise ConfigError(f"top_k must be an integer between 1 and the vocabulary size, got {args.top_k}")
    for flag, path, suffixes in (("--png", args.png, (".png",)), ("--html", args.html, (".html", ".htm")),
                                 ("--vectors", args.vectors, (".png",))):  # fmt: skip
        if path is not None:
            check_output_file(path, suffixes=suffixes)
    model = load_model(args)
    check_top_k(args.top_k, model.cfg.d_vocab)
    lens = _tuned(args, model) if args.lens == "tuned" else None
    res = logit_lens(model, args.prompt, top_k=args.top_k, sublayers=args.sublayers, targets=args.target, lens=lens)
    require_finite(model, res.top_probs, "lens probabilities")
    pos = res.position(args.position)
    written = []
    if args.png:
        written.append(res.save_png(args.png, pos))
    if args.html:
        written.append(res.save_html(args.html, pos))
    if args.vectors:
        written.append(res.save_vectors(args.vectors, pos))
    if args.json:
        emit_json({**res.to_dict(), "position": pos, "seconds": round(res.seconds, 3),
                   "files": [str(w) for w in written]})  # fmt: skip
        return 0
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(res.table(pos, color=color))
    for t, tid in zip(res.target_tokens, res.target_ids):
        first = next((r for r in range(res.n_rows) if int(res.target_ranks[r, pos, res.target_ids.index(tid)]) <= res.top_k), None)
        where = f"enters the top-{res.top_k} at {res.rows[first].label}" if first is not None else f"never in the top-{res.top_k}"
        final = res.target_probs[-1, pos, res.target_ids.index(tid)]
        print(f"target {t!r}: {where}; final probability {float(final):.2%}")
    print(f"({res.seconds:.1f} s)" + "".join(f"\nwrote {w}" for w in written))
    return 0


def train(args: argparse.Namespace) -> int:
    from mechscope.cli.config_args import config_from_args
    from mechscope.errors import ConfigError
    from mechscope.lens.checkpoint import check_checkpoint_dir, checkpoint_dir, remove_checkpoint
    from mechscope.lens.config import TunedLensTrainConfig
    from mechscope.lens.train import train_tuned_lens
    from mechscope.lens.tuned import check_lens_dir, default_lens_dir

    cfg = config_from_args(TunedLensTrainConfig, args)
    if args.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every must be a positive number of steps, got {args.checkpoint_every}")
    if args.out is not None:  # checked before the model loads; the default place needs the model
        check_lens_dir(args.out)
        check_checkpoint_dir(checkpoint_dir(args.out))
    model = load_model(args)
    out = check_lens_dir(args.out or default_lens_dir(model))
    checkpoint = check_checkpoint_dir(checkpoint_dir(out))
    if args.fresh:
        remove_checkpoint(checkpoint)
    lens = train_tuned_lens(model, cfg, checkpoint=checkpoint, checkpoint_every=args.checkpoint_every)
    out = lens.save(out)
    result = lens.info["result"]
    if args.json:
        emit_json({"path": str(out), "checkpoint": str(checkpoint), "model": model.name, "fingerprint": model.fingerprint,
                   "train": cfg.to_dict(), **{k: v for k, v in result.items() if k != "kl_history"}})  # fmt: skip
        return 0
    print(f"saved tuned lens to {out} (training checkpoint: {checkpoint})")
    if result["resumed_at_steps"]:
        print(f"resumed from the checkpoint at step {', '.join(map(str, result['resumed_at_steps']))}")
    print(f"{result['tokens']:,} tokens in {result['steps']} steps, {result['positions_per_translator']:,} positions "
          f"per translator, {result['seconds'] / 60:.1f} min")  # fmt: skip
    print("check it on held-out text: mechscope lens eval-tuned" + (f" --model {args.model}" if args.model else ""))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from mechscope.cli.config_args import config_from_args
    from mechscope.data.corpus import CorpusConfig, corpus_contexts
    from mechscope.errors import ConfigError
    from mechscope.io import check_output_file
    from mechscope.lens.evaluate import evaluate_lenses

    if args.tokens < 1:
        raise ConfigError(f"--tokens must be a positive number of held-out tokens, got {args.tokens}")
    if args.png is not None:
        check_output_file(args.png, suffixes=(".png",))
    corpus, tokens = config_from_args(CorpusConfig, args), args.tokens
    model = load_model(args)
    lens = _tuned(args, model)
    contexts = corpus_contexts(model.tokenizer, corpus, "heldout", max_tokens=tokens)
    ev = evaluate_lenses(model, lens, contexts, sublayers=args.sublayers)
    written = []
    if args.png:
        from mechscope.viz.lens_kl import save_kl_png

        trained = lens.info.get("result", {}).get("tokens")
        title = f"{model.name}: logit lens vs tuned lens" + (f" (trained on {trained:,} tokens)" if trained else "")
        written.append(save_kl_png(ev.to_dict(), args.png, title))
    if args.json:
        emit_json({"model": model.name, "fingerprint": model.fingerprint, "corpus": corpus.to_dict(),
                   "lens_tokens_trained": lens.info.get("result", {}).get("tokens"), **ev.to_dict(),
                   "files": [str(w) for w in written]})  # fmt: skip
        return 0
    print(ev.table())
    verdict = "below" if ev.tuned_better_everywhere else "NOT below"
    print(f"tuned lens KL is {verdict} the logit lens at every row except the output ({ev.seconds:.0f} s)")
    print("".join(f"wrote {w}\n" for w in written), end="")
    return 0
